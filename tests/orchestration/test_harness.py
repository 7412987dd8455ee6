"""The orchestration harness on small probe workflows: each SDK feature the coordinator uses."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import pytest
from dapr.ext.workflow._durabletask.task import NonRetryableError

from fte.worker import Registry
from tests.support.orchestration import (
    START,
    Activity,
    Child,
    Completed,
    Failed,
    Stalled,
    Timer,
    WorkflowHarness,
)

Flow = Generator[Any, Any, Any]

RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=5), backoff_coefficient=2.0, max_number_of_attempts=3
)


def chain(ctx: wf.DaprWorkflowContext, name: str) -> Flow:
    greeting = yield ctx.call_activity("greet", input=name)
    shouted = yield ctx.call_activity("shout", input=greeting)
    return {"result": shouted, "context": type(ctx).__name__}


def fan_out(ctx: wf.DaprWorkflowContext, numbers: list[int]) -> Flow:
    squares = yield wf.when_all([ctx.call_activity("square", input=n) for n in numbers])
    return squares


def parent(ctx: wf.DaprWorkflowContext, n: int) -> Flow:
    named = yield ctx.call_child_workflow("kid", input=n, instance_id=f"{ctx.instance_id}.kid")
    default = yield ctx.call_child_workflow("kid", input=n + 1)
    return [named, default]


def kids(ctx: wf.DaprWorkflowContext, names: list[str]) -> Flow:
    children: list[Any] = [
        ctx.call_child_workflow("kid", input=name, instance_id=f"{ctx.instance_id}.{name}")
        for name in names
    ]
    return (yield wf.when_all(children))


def approval(ctx: wf.DaprWorkflowContext, hours: int) -> Flow:
    deadline = ctx.create_timer(timedelta(hours=hours))
    answer = ctx.wait_for_external_event("approval")
    winner = yield wf.when_any([answer, deadline])
    decision = answer.get_result() if winner is answer else "timed out"
    return {"decision": decision, "at": ctx.current_utc_datetime.isoformat()}


def careful(ctx: wf.DaprWorkflowContext, item: str) -> Flow:
    try:
        yield ctx.call_activity("risky", input=item)
    except wf.TaskFailedError as exc:
        yield ctx.call_activity("undo", input=exc.details.message)
        return "compensated"
    return "done"


def retried(ctx: wf.DaprWorkflowContext, item: str) -> Flow:
    ctx.set_custom_status(f"trying {item}")
    return (yield ctx.call_activity("risky", input=item, retry_policy=RETRY))


def patched(ctx: wf.DaprWorkflowContext, _: None) -> Flow:
    if ctx.is_patched("greet-first"):
        yield ctx.call_activity("greet")
    yield ctx.call_activity("work")
    return "done"


def job_v1(ctx: wf.DaprWorkflowContext, _: None) -> Flow:
    return f"v1 {(yield ctx.call_activity('work'))}"


def job_v2(ctx: wf.DaprWorkflowContext, _: None) -> Flow:
    return f"v2 {(yield ctx.call_activity('work'))}"


def register_v1(registry: Registry) -> None:
    registry.workflow("job", job_v1, version="1", latest=True)


def register_v1_v2(registry: Registry) -> None:
    registry.workflow("job", job_v1, version="1")
    registry.workflow("job", job_v2, version="2", latest=True)


def register_v2(registry: Registry) -> None:
    registry.workflow("job", job_v2, version="2", latest=True)


def test_activity_chain_step_by_step() -> None:
    h = WorkflowHarness.of(chain)
    assert h.start("ada") == [Activity("greet", "ada")]
    assert h.complete("greet", "hello ada").step() == [Activity("shout", "hello ada")]
    assert h.complete("shout", "HELLO ADA").step() == [
        Completed({"result": "HELLO ADA", "context": "DaprWorkflowContext"})
    ]
    assert h.pending == []
    assert h.issued == [Activity("greet", "ada"), Activity("shout", "hello ada"), h.result]


def test_activity_chain_with_responders() -> None:
    h = WorkflowHarness.of(chain)
    h.start("ada")
    assert h.run_until_blocked({"greet": lambda n: f"hello {n}", "shout": str.upper}) == []
    assert h.result == Completed({"result": "HELLO ADA", "context": "DaprWorkflowContext"})


def test_run_until_blocked_stops_at_an_unanswered_task() -> None:
    h = WorkflowHarness.of(chain)
    h.start("ada")
    assert h.run_until_blocked({"greet": lambda n: f"hello {n}"}) == [
        Activity("shout", "hello ada")
    ]
    assert h.result is None


def test_fan_out_waits_for_all_and_keeps_scheduling_order() -> None:
    h = WorkflowHarness.of(fan_out)
    assert h.start([1, 2, 3]) == [
        Activity("square", 1),
        Activity("square", 2),
        Activity("square", 3),
    ]
    first, second, third = h.pending
    assert h.complete(third, 9).step() == []
    assert h.complete(first, 1).step() == []
    assert h.pending == [Activity("square", 2)]
    assert h.complete(second, 4).step() == [Completed([1, 4, 9])]


def test_fan_out_delivered_in_one_batch() -> None:
    h = WorkflowHarness.of(fan_out)
    h.start([1, 2, 3])
    assert h.run_until_blocked({"square": lambda n: n * n}) == []
    assert h.result == Completed([1, 4, 9])
    kinds = [event.WhichOneof("eventType") for event in h.history]
    assert kinds[:5] == ["workflowStarted", "executionStarted", *["taskScheduled"] * 3]
    assert kinds[5:] == ["workflowStarted", *["taskCompleted"] * 3]


def test_child_workflows_with_given_and_default_instance_ids() -> None:
    h = WorkflowHarness.of(parent, instance_id="run-7")
    assert h.start(1) == [Child("kid", "run-7.kid", 1)]
    assert h.complete("kid", "one").step() == [Child("kid", "run-7:0002", 2)]
    assert h.complete("kid", "two").step() == [Completed(["one", "two"])]


def test_child_workflows_with_responders() -> None:
    h = WorkflowHarness.of(parent)
    h.start(1)
    assert h.run_until_blocked({"kid": lambda n: n * 10}) == []
    assert h.result == Completed([10, 20])


def test_children_of_one_workflow_are_told_apart_by_instance_id() -> None:
    h = WorkflowHarness.of(kids, instance_id="run")
    assert h.start(["a", "b"]) == [Child("kid", "run.a", "a"), Child("kid", "run.b", "b")]
    with pytest.raises(LookupError, match="is not one pending"):
        h.complete("kid")
    assert h.complete("run.b", "B").step() == []
    assert h.complete("run.a", "A").step() == [Completed(["A", "B"])]


def test_failed_child_fails_the_parent() -> None:
    h = WorkflowHarness.of(parent)
    h.start(1)
    [result] = h.fail("kid", ValueError("bad input")).step()
    assert isinstance(result, Failed) and result.error_type == "TaskFailedError"
    assert "bad input" in result.message


def test_indefinite_event_wait_is_an_optional_timer_that_never_fires() -> None:
    h = WorkflowHarness.of(approval)
    assert h.start(2) == [
        Timer(START + timedelta(hours=2)),
        Timer(None, "externalEvent", "approval"),
    ]
    assert h.pending == [Timer(START + timedelta(hours=2))]
    wait = h.actions[1]
    assert isinstance(wait, Timer)
    with pytest.raises(LookupError, match="is not one pending Timer"):
        h.fire(wait)


def test_event_wins_the_race_against_the_timer() -> None:
    h = WorkflowHarness.of(approval)
    h.start(2)
    h.advance(timedelta(minutes=30))
    assert h.raise_event("APPROVAL", "yes").step() == [  # event names are case-insensitive
        Completed({"decision": "yes", "at": "2030-01-01T00:30:00"})
    ]


def test_timer_wins_the_race_against_the_event() -> None:
    h = WorkflowHarness.of(approval)
    h.start(2)
    assert h.fire().step() == [Completed({"decision": "timed out", "at": "2030-01-01T02:00:00"})]
    assert h.now == START + timedelta(hours=2)


def test_advancing_the_clock_fires_the_timers_due() -> None:
    h = WorkflowHarness.of(approval)
    h.start(2)
    with pytest.raises(RuntimeError, match="nothing queued"):
        h.advance(timedelta(hours=1)).step()
    assert h.advance(timedelta(hours=2)).step() == [
        Completed({"decision": "timed out", "at": "2030-01-01T03:00:00"})
    ]


def test_failed_activity_is_caught_and_compensated() -> None:
    h = WorkflowHarness.of(careful)
    h.start("a")
    assert h.fail("risky", OSError("disk full")).step() == [Activity("undo", "disk full")]
    assert h.complete("undo").step() == [Completed("compensated")]


def test_uncaught_activity_failure_fails_the_workflow() -> None:
    h = WorkflowHarness.of(retried, instance_id="run-1")
    h.start("a")
    for _ in range(2):
        h.fail("risky", OSError("disk full")).step()
        h.fire().step()
    [result] = h.fail("risky", OSError("disk full")).step()
    assert result == Failed("TaskFailedError", "run-1: Activity task #5 failed: disk full")


def test_retry_policy_shows_as_backoff_timers_and_new_attempts() -> None:
    h = WorkflowHarness.of(retried)
    assert h.start("a") == [Activity("risky", "a")]
    assert h.custom_status == "trying a"
    first = START + timedelta(seconds=5)
    assert h.fail("risky", OSError("busy")).step() == [Timer(first, "activityRetry")]
    assert h.fire().step() == [Activity("risky", "a")]
    second = first + timedelta(seconds=10)
    assert h.fail("risky", OSError("busy")).step() == [Timer(second, "activityRetry")]
    assert h.fire().step() == [Activity("risky", "a")]
    assert h.complete("risky", "ok").step() == [Completed("ok")]
    assert [a.id for a in h.issued if isinstance(a, Activity)] == [1, 3, 5]


def test_run_until_blocked_fires_retry_timers() -> None:
    attempts = itertools.count(1)

    def flaky(item: str) -> str:
        if (attempt := next(attempts)) < 3:
            raise OSError(f"attempt {attempt} failed")
        return f"{item} on attempt {attempt}"

    h = WorkflowHarness.of(retried)
    h.start("a")
    assert h.run_until_blocked({"risky": flaky}) == []
    assert h.result == Completed("a on attempt 3")
    assert h.now == START + timedelta(seconds=15)


def test_non_retryable_error_skips_the_retry_policy() -> None:
    h = WorkflowHarness.of(retried)
    h.start("a")
    [result] = h.fail("risky", NonRetryableError("bad request")).step()
    assert isinstance(result, Failed) and "bad request" in result.message


def test_replaying_the_same_history_yields_the_same_actions() -> None:
    def script() -> WorkflowHarness:
        h = WorkflowHarness.of(fan_out)
        h.start([1, 2])
        h.complete(2, 4).step()
        return h

    one, two = script(), script()
    assert one.replay() == one.raw_actions == [] and one.pending == [Activity("square", 1)]
    assert [e.SerializeToString() for e in one.history] == [
        e.SerializeToString() for e in two.history
    ]
    one.complete("square", 1).step()
    assert one.replay() == one.raw_actions
    assert one.result == Completed([1, 4])


def test_replay_mismatch_in_a_name_fails_the_workflow() -> None:
    calls = itertools.count()

    def drifting(ctx: wf.DaprWorkflowContext, _: None) -> Flow:
        yield ctx.call_activity(f"step-{next(calls)}")  # not replay-safe
        return "unreachable"

    h = WorkflowHarness.of(drifting)
    assert h.start() == [Activity("step-0")]
    [result] = h.complete("step-0").step()
    assert isinstance(result, Failed) and result.error_type == "NonDeterminismError"


def test_replay_mismatch_in_an_input_shows_in_replay() -> None:
    calls = itertools.count()

    def drifting(ctx: wf.DaprWorkflowContext, _: None) -> Flow:
        yield ctx.call_activity("step", input=next(calls))  # the SDK checks names only
        return "unreachable"

    h = WorkflowHarness.of(drifting)
    h.start()
    assert h.replay() != h.raw_actions


def test_a_patch_taken_by_a_new_run_stays_taken_on_replay() -> None:
    h = WorkflowHarness.of(patched)
    assert h.start() == [Activity("greet")]
    assert list(h.history[0].workflowStarted.version.patches) == ["greet-first"]
    assert h.complete("greet").step() == [Activity("work")]
    assert h.complete("work").step() == [Completed("done")]


def test_a_run_keeps_its_version_across_a_worker_upgrade() -> None:
    old = WorkflowHarness(register_v1, "job")
    assert old.start() == [Activity("work")]
    assert old.history[0].workflowStarted.version.name == "1"
    assert old.reregister(register_v1_v2).complete("work", "x").step() == [Completed("v1 x")]
    new = WorkflowHarness(register_v1_v2, "job")
    new.start()
    assert new.complete("work", "x").step() == [Completed("v2 x")]


def test_a_run_whose_version_is_gone_stalls() -> None:
    h = WorkflowHarness(register_v1, "job")
    h.start()
    assert h.reregister(register_v2).complete("work").step() == [Stalled()]


def test_misuse_is_reported_with_what_is_pending() -> None:
    h = WorkflowHarness.of(fan_out)
    h.start([1, 2])
    with pytest.raises(LookupError, match="is not one pending"):
        h.complete("square")  # two match
    with pytest.raises(RuntimeError, match="nothing queued"):
        h.step()
