"""One execution of the coordinator: what every stage needs to schedule work and wait for it."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
from pydantic import BaseModel

from fte import names
from fte.agents import AnyAgent
from fte.contracts import (
    AgentTask,
    EndStatus,
    ModelEndpoint,
    Notice,
    ReplyShape,
    RunConfig,
    StoreInput,
)
from fte.coordinator.progress import ProgressTracker
from fte.retry_policies import IO_RETRY, LLM_RETRY

Flow = Generator[Any, Any, Any]


class RunEnded(Exception):
    """Raised inside the coordinator to stop the pipeline: rejected, cancelled or failed."""

    def __init__(self, status: EndStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def cancel_reason(payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("reason"):
        return f"cancelled: {payload['reason']}"
    return "cancelled by user"


def agent_task(
    task_id: str,
    agent: AnyAgent,
    *,
    endpoint: ModelEndpoint,
    model: str,
    inputs: BaseModel,
    artifact: str | None = None,
    sources_from: list[str] | None = None,
    claims_from: list[str] | None = None,
    from_store: bool = False,
    reply: ReplyShape = "full",
) -> AgentTask:
    """The last four: where the activity reads what the coordinator left in the state store,
    and what its reply carries (see `AgentTask`)."""
    return AgentTask(
        task_id=task_id,
        agent=agent.name,
        model=model,
        endpoint=endpoint,
        inputs=inputs.model_dump(mode="json"),
        artifact=artifact,
        sources_from=sources_from,
        claims_from=claims_from,
        from_store=from_store,
        reply=reply,
    )


def ask(
    ctx: wf.DaprWorkflowContext,
    task_id: str,
    agent: AnyAgent,
    *,
    endpoint: ModelEndpoint,
    model: str,
    inputs: BaseModel,
    artifact: str | None = None,
) -> Any:
    """Schedule `agent`'s activity; its result comes back through `agent.reply()`."""
    task = agent_task(
        task_id, agent, endpoint=endpoint, model=model, inputs=inputs, artifact=artifact
    )
    return ctx.call_activity(names.agent_activity(agent.name), input=task, retry_policy=LLM_RETRY)


class Run:
    """Per-execution state of the coordinator; rebuilt identically on every replay."""

    def __init__(self, ctx: wf.DaprWorkflowContext, cfg: RunConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.task_id = ctx.instance_id
        self.started = ctx.current_utc_datetime
        self.progress = ProgressTracker(
            ctx, task_id=self.task_id, query=cfg.query, models=cfg.models
        )
        self.sub_question_ids: list[str] = []
        self.children: list[str] = []
        # Artifacts of gap-filling rounds, by step, in the order they may be written.
        self.round_artifacts: list[list[str]] = []
        # Coordinator v2 keeps passages out of history: its source finders and agents pass
        # artifact names and IDs, and activities read the text from the state store.
        self.lean = False
        # Coordinator v3 also keeps claims and the draft out of history: agents build their
        # inputs from the notes and fact checks, and the report is finalized from artifacts.
        self.lean_claims = False
        # Coordinator v3 keeps one check-in timer across waits until it fires, instead of a
        # new one per wait (each is a reminder in the scheduler, created and later deleted:
        # a fan-out's waits made one per finished child).
        self.shared_checkin = False
        # Coordinator v4's source finders propose their queries and search in one activity.
        self.proposing = False
        # Coordinator v5's do all their work (proposal, search, judgement) in one activity.
        self.single_activity_finders = False
        self._checkin: Any = None
        # Set when the budget ended the research early; the run still completes.
        self.budget_note: str | None = None
        self.cancel = ctx.wait_for_external_event(names.CANCEL_EVENT)

    def notice(self, kind: str, message: str, **data: Any) -> Any:
        return self.ctx.call_activity(
            names.NOTIFY,
            input=Notice.model_validate(
                {"task_id": self.task_id, "kind": kind, "message": message, "data": data}
            ),
            retry_policy=IO_RETRY,
        )

    def store(self, name: str, document: BaseModel | dict[str, Any]) -> Any:
        if isinstance(document, BaseModel):
            document = document.model_dump(mode="json")
        return self.ctx.call_activity(
            names.STORE_ARTIFACT,
            input=StoreInput(task_id=self.task_id, name=name, document=document),
            retry_policy=IO_RETRY,
        )

    def ask(
        self, agent: AnyAgent, inputs: BaseModel, *, model: str, artifact: str | None = None
    ) -> Any:
        return ask(
            self.ctx,
            self.task_id,
            agent,
            endpoint=self.cfg.endpoint,
            model=model,
            inputs=inputs,
            artifact=artifact,
        )

    @property
    def source_finder(self) -> str:
        """The child workflow that finds one sub-question's sources, in this version."""
        if self.single_activity_finders:
            return names.SOURCE_FINDER_SINGLE
        if self.proposing:
            return names.SOURCE_FINDER_PROPOSING
        return names.SOURCE_FINDER_LEAN if self.lean else names.SOURCE_FINDER

    def child(self, workflow: str, role: str, payload: BaseModel) -> Any:
        instance_id = names.child_id(self.task_id, role)
        self.children.append(instance_id)
        return self.ctx.call_child_workflow(
            workflow, input=payload.model_dump(mode="json"), instance_id=instance_id
        )

    def specialist(
        self,
        agent: AnyAgent,
        inputs: BaseModel,
        *,
        model: str,
        artifact: str | None = None,
        role: str | None = None,
        offline: bool = False,
        sources_from: list[str] | None = None,
        claims_from: list[str] | None = None,
        from_store: bool = False,
        reply: ReplyShape = "full",
    ) -> Any:
        """Run `agent` as its own child workflow `research.<agent>` (instance `<task>.<agent>`,
        or `<task>.<role>` when one agent runs more than once, as in gap-filling rounds).
        `offline`: on the built-in offline model, whatever the run's model server is.
        `from_store`, `claims_from`, `reply`: see `AgentTask` (lean history)."""
        task = agent_task(
            self.task_id,
            agent,
            endpoint=ModelEndpoint(offline=True) if offline else self.cfg.endpoint,
            model=model,
            inputs=inputs,
            artifact=artifact,
            # Only the sources' IDs travel (and are stored in history); the activity reads
            # their text from these artifacts.
            sources_from=sources_from,
            claims_from=claims_from,
            from_store=from_store,
            reply=reply,
        )
        return self.child(names.specialist_workflow(agent.name), role or agent.name, task)

    def wait(self, task: Any) -> Flow:
        """Wait for `task`, sending progress check-ins on a timer and honouring `cancel`."""
        interval = timedelta(seconds=self.cfg.progress_checkin_interval_s)
        while True:
            checkin = self._checkin
            if checkin is None:
                checkin = self.ctx.create_timer(interval)
                if self.shared_checkin:
                    self._checkin = checkin
            winner = yield wf.when_any([task, self.cancel, checkin])
            if winner is task:
                return task.get_result()
            if winner is self.cancel:
                raise RunEnded("cancelled", cancel_reason(self.cancel.get_result()))
            self._checkin = None  # it fired: the next wait starts the next interval
            self.progress.checked_in()
            yield self.notice(
                "progress_checkin",
                f"{self.progress.stage}: still working",
                stage=self.progress.stage,
                tokens=self.progress.state.usage.total_tokens,
            )
