"""Step a workflow through the SDK's real orchestration executor, without a sidecar.

The test plays the engine's bookkeeping only: it keeps the history, delivers
results, fires timers and raises events. Each step hands the SDK's
`_OrchestrationExecutor` the recorded history as old events plus the step's new
events, as the sidecar does, records each returned action as the event the engine
would append (taskScheduled, timerCreated, childWorkflowInstanceCreated), and
stamps the version and patches the step reported on its workflowStarted event.
Replay, when_all/when_any, retry policies, versions, patches and non-determinism
checks are the SDK's own code. Workflows are registered through fte's `Registry`
on a real (never started) `WorkflowRuntime`, so they see the production
`DaprWorkflowContext`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

import dapr.ext.workflow as wf
import dapr.ext.workflow._durabletask.internal.helpers as ph
import dapr.ext.workflow._durabletask.internal.protos as pb
from dapr.ext.workflow._durabletask import worker
from dapr.ext.workflow._durabletask.internal import shared
from dapr.ext.workflow._durabletask.internal import timer as timers
from dapr.ext.workflow.logger import LoggerOptions

from fte.worker import Registrar, Registry, _InFlight

START = datetime(2030, 1, 1)  # naive UTC, like ctx.current_utc_datetime in production
_LOG = logging.getLogger(__name__)


# `id` is the SDK's sequence number for the task: shown, but left out of equality.
@dataclass(frozen=True)
class Activity:
    """`ctx.call_activity(name, input=...)`."""

    name: str
    input: Any = None
    id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Child:
    """`ctx.call_child_workflow(name, input=..., instance_id=...)`."""

    name: str
    instance_id: str
    input: Any = None
    id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Timer:
    """A durable timer. `origin` is the SDK's: createTimer, activityRetry, childWorkflowRetry or
    externalEvent (a wait for `event`; fire_at None means an indefinite wait, never fired)."""

    fire_at: datetime | None
    origin: str = "createTimer"
    event: str = ""
    id: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Completed:
    output: Any = None


@dataclass(frozen=True)
class Failed:
    error_type: str
    message: str


@dataclass(frozen=True)
class ContinuedAsNew:
    """`ctx.continue_as_new(input, save_events=...)`: this execution ends and the next one
    starts on `input`, with the events it had received but not consumed (`carried`)."""

    input: Any = None
    carried: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Stalled:
    """The run's recorded workflow version is not registered: the engine waits for a worker."""


Task = Activity | Child | Timer
Ending = Completed | Failed | Stalled | ContinuedAsNew
Action = Task | Ending
Ref = int | str | Task  # a sequence id, an activity or child name, a child instance id, a task
Responder = Callable[[Any], Any]  # decoded input -> result; raising fails the task
_RETRY_ORIGINS = ("activityRetry", "childWorkflowRetry")


class WorkflowHarness:
    """One workflow instance driven step by step: queue deliveries, then `step()`."""

    def __init__(
        self,
        register: Registrar,
        workflow: str,
        *,
        instance_id: str = "wf-test",
        now: datetime = START,
    ) -> None:
        self._registry = _registry(register)
        self.workflow, self.instance_id, self.now = workflow, instance_id, now
        self.history: list[pb.HistoryEvent] = []
        self.actions: list[Action] = []  # what the last step returned
        self.raw_actions: list[pb.WorkflowAction] = []
        self.issued: list[Action] = []  # every action of every step, in order
        self.custom_status: str | None = None
        self.result: Ending | None = None
        self._pending: dict[int, Task] = {}  # indefinite event waits never fire: not kept
        self._inbox: list[pb.HistoryEvent] = []
        self._last = (0, 0)  # the history slice that was the last step's new events

    @classmethod
    def of(cls, fn: Callable[..., Any], **kwargs: Any) -> WorkflowHarness:
        """A harness for one workflow function, registered under its own name."""
        name = fn.__name__
        return cls(lambda registry: registry.workflow(name, fn), name, **kwargs)

    def reregister(self, register: Registrar) -> Self:
        """Run the rest on other code over the same history, as after a worker upgrade."""
        self._registry = _registry(register)
        return self

    @property
    def pending(self) -> list[Task]:
        """Scheduled tasks not answered yet, in scheduling order."""
        return [task for _, task in sorted(self._pending.items())]

    def start(self, input: Any = None) -> list[Action]:
        if self.history:
            raise RuntimeError("the workflow has already started")
        events, self._inbox = self._inbox, []  # e.g. events carried over by continue_as_new
        return self._run(
            [
                ph.new_execution_started_event(self.workflow, self.instance_id, _encode(input)),
                *events,
            ]
        )

    def next_execution(self) -> WorkflowHarness:
        """The execution a `ContinuedAsNew` ending starts: same instance, code and clock, a
        fresh history holding the new input and the carried events."""
        if not isinstance(self.result, ContinuedAsNew):
            raise RuntimeError(f"the workflow did not continue as new: {self.result}")
        successor = WorkflowHarness(
            lambda _: None, self.workflow, instance_id=self.instance_id, now=self.now
        )
        successor._registry = self._registry
        for name, payload in self.result.carried:
            successor.raise_event(name, payload)
        successor.start(self.result.input)
        return successor

    def complete(self, ref: Ref, result: Any = None) -> Self:
        task = self._take(ref, Activity, Child)
        if isinstance(task, Activity):
            return self._queue(ph.new_task_completed_event(task.id, _encode(result)))
        return self._queue(ph.new_child_workflow_completed_event(task.id, _encode(result)))

    def fail(self, ref: Ref, error: Exception) -> Self:
        """Fail a task with `error`; its type name is what retry policies look at."""
        task = self._take(ref, Activity, Child)
        if isinstance(task, Activity):
            return self._queue(ph.new_task_failed_event(task.id, error))
        return self._queue(ph.new_child_workflow_failed_event(task.id, error))

    def fire(self, ref: Ref | None = None) -> Self:
        """Fire a timer (default: the one due first), moving the clock to its fire time."""
        due = self._due()
        timer = self._take(due[0][1] if ref is None and due else ref, Timer)
        assert isinstance(timer, Timer) and timer.fire_at is not None
        self.now = max(self.now, timer.fire_at)
        return self._queue(timers.new_timer_fired_event(timer.id, timer.fire_at))

    def raise_event(self, name: str, payload: Any = None) -> Self:
        return self._queue(ph.new_event_raised_event(name, _encode(payload)))

    def advance(self, delta: timedelta) -> Self:
        """Move the clock on; the timers due by then fire, earliest first, with the next step."""
        self.now += delta
        for fire_at, timer_id, _ in self._due():
            if fire_at <= self.now:
                self.fire(timer_id)
        return self

    def step(self) -> list[Action]:
        """Deliver everything queued, as one batch in queue order; return the new actions."""
        if not self._inbox:
            raise RuntimeError("nothing queued: complete, fail, fire or raise_event first")
        events, self._inbox = self._inbox, []
        return self._run(events)

    def run_until_blocked(
        self, responders: Mapping[str, Responder], *, max_steps: int = 1000
    ) -> list[Task]:
        """Answer activities and children by name and fire retry timers, one batch per step,
        until nothing is left to answer; return what is still pending."""
        for _ in range(max_steps):
            ready = [
                t
                for t in self.pending
                if getattr(t, "name", None) in responders
                or getattr(t, "origin", None) in _RETRY_ORIGINS
            ]
            if self.result is not None or not ready:
                return self.pending
            for task in ready:
                if isinstance(task, Timer):
                    self.fire(task)
                    continue
                try:
                    result = responders[task.name](task.input)
                except Exception as exc:
                    self.fail(task, exc)
                else:
                    self.complete(task, result)
            self.step()
        raise RuntimeError(f"still running after {max_steps} steps; pending: {self.pending}")

    def replay(self) -> list[pb.WorkflowAction]:
        """Re-run the last step on a fresh executor; a deterministic workflow returns
        `raw_actions` again, inputs and task execution ids included."""
        start, end = self._last
        return self._execute(self.history[:start], self.history[start:end]).actions

    def _execute(
        self, old: list[pb.HistoryEvent], new: list[pb.HistoryEvent]
    ) -> worker.ExecutionResults:
        executor = worker._OrchestrationExecutor(self._registry, _LOG)
        return executor.execute(self.instance_id, old, new)

    def _run(self, events: list[pb.HistoryEvent]) -> list[Action]:
        if self.result is not None:
            raise RuntimeError(f"the workflow has already ended: {self.result}")
        new = [ph.new_workflow_started_event(self.now), *events]
        results = self._execute(self.history, new)
        self._last = (len(self.history), len(self.history) + len(new))
        if results.version_name or results.patches:
            version = pb.WorkflowVersion(name=results.version_name, patches=results.patches)
            new[0].workflowStarted.version.CopyFrom(version)
        self.history += new
        self.raw_actions = list(results.actions)
        self.actions = [_decode(a) for a in self.raw_actions]
        self.issued += self.actions
        self.custom_status = results.encoded_custom_status
        for raw, action in zip(self.raw_actions, self.actions, strict=True):
            if isinstance(action, Completed | Failed | Stalled | ContinuedAsNew):
                self.result, self._pending = action, {}
                continue
            self.history.append(_recorded(raw))
            if not (isinstance(action, Timer) and action.fire_at is None):
                self._pending[action.id] = action
        return self.actions

    def _due(self) -> list[tuple[datetime, int, Timer]]:
        """Timers that will fire (event waits never do), earliest first."""
        return sorted(
            (t.fire_at, t.id, t) for t in self.pending if isinstance(t, Timer) and t.fire_at
        )

    def _queue(self, event: pb.HistoryEvent) -> Self:
        self._inbox.append(event)
        return self

    def _take(self, ref: Ref | None, *kinds: type[Task]) -> Task:
        key = ref.id if isinstance(ref, Activity | Child | Timer) else ref
        found = [
            t
            for t in self.pending
            if isinstance(t, kinds)
            and key in (t.id, getattr(t, "name", t.id), getattr(t, "instance_id", t.id))
        ]
        if len(found) != 1:
            wanted = " or ".join(kind.__name__ for kind in kinds)
            raise LookupError(f"{ref!r} is not one pending {wanted}; pending: {self.pending}")
        return self._pending.pop(found[0].id)


def _registry(register: Registrar) -> worker._Registry:
    """Register through fte's Registry on a real WorkflowRuntime (never started), so
    workflows get the SDK's production wrapping and `DaprWorkflowContext`."""
    options = LoggerOptions(log_level="WARNING")  # as fte.worker.WorkflowWorker
    runtime = wf.WorkflowRuntime(host="127.0.0.1", port="1", logger_options=options)
    # The SDK worker appends its handler to a process-wide logger on every construction.
    logging.getLogger("durabletask-worker").removeHandler(options.log_handler)
    registry = Registry(runtime, _InFlight())
    register(registry)
    registry.check_complete()
    sdk_worker: worker.TaskHubGrpcWorker = vars(runtime)["_WorkflowRuntime__worker"]
    return sdk_worker._registry


def _encode(value: Any) -> str | None:
    return None if value is None else str(shared.to_json(value))


def _decode_json(value: Any) -> Any:  # a protobuf StringValue
    return shared.from_json(value.value) if value.value else None


def _decode(action: pb.WorkflowAction) -> Action:
    kind = action.WhichOneof("workflowActionType")
    if kind == "scheduleTask":
        s = action.scheduleTask
        return Activity(s.name, _decode_json(s.input), action.id)
    if kind == "createChildWorkflow":
        c = action.createChildWorkflow
        return Child(c.name, c.instanceId, _decode_json(c.input), action.id)
    if kind == "createTimer":
        t = action.createTimer
        fire_at = None if timers.is_optional_timer_action(action) else t.fireAt.ToDatetime()
        return Timer(
            fire_at, t.WhichOneof("origin") or "createTimer", t.externalEvent.name, action.id
        )
    done = action.completeWorkflow
    if kind == "completeWorkflow" and done.workflowStatus == pb.ORCHESTRATION_STATUS_COMPLETED:
        return Completed(_decode_json(done.result))
    if kind == "completeWorkflow" and done.workflowStatus == pb.ORCHESTRATION_STATUS_FAILED:
        return Failed(done.failureDetails.errorType, done.failureDetails.errorMessage)
    if (
        kind == "completeWorkflow"
        and done.workflowStatus == pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW
    ):
        carried = tuple(
            (e.eventRaised.name, _decode_json(e.eventRaised.input)) for e in done.carryoverEvents
        )
        return ContinuedAsNew(_decode_json(done.result), carried)
    if kind == "workflowVersionNotAvailable":
        return Stalled()
    raise NotImplementedError(f"the harness does not model this action: {action}")


def _recorded(action: pb.WorkflowAction) -> pb.HistoryEvent:
    """The history event with which the engine confirms a scheduling action."""
    if action.HasField("scheduleTask"):
        s = action.scheduleTask
        return ph.new_task_scheduled_event(action.id, s.name, s.input.value or None)
    if action.HasField("createChildWorkflow"):
        c = action.createChildWorkflow
        return ph.new_child_workflow_created_event(
            action.id, c.name, c.instanceId, c.input.value or None
        )
    t = action.createTimer
    origin = t.WhichOneof("origin")
    return timers.new_timer_created_event(action.id, t.fireAt, origin and getattr(t, origin))
