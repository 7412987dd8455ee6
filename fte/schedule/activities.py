"""The schedule's one side effect: a fire, which starts (or skips, or buffers) a run.

At-least-once like every activity, and still never two runs for one fire: the run's ID is
`<schedule>-<fire time>`, and an attempt that finds that run already there (an earlier
attempt started it, then its worker died) reports it as started instead of deciding again.
"""

from __future__ import annotations

from typing import Any

import dapr.ext.workflow as wf
import structlog

from fte.activities import _permanent_failures_are_final, deps
from fte.client import SETTLED_STATES, ResearchClient, TaskStateError, UnknownTaskError
from fte.contracts import Notice
from fte.schedule.contracts import FireInput, FireResult
from fte.schedule.policy import decide

log = structlog.get_logger(__name__)


def _client() -> ResearchClient:
    d = deps()
    if d.workflow_client is None:
        raise RuntimeError("the fire activity needs a workflow client (fte.wiring configures one)")
    return ResearchClient.borrowing(d.workflow_client, d.store)


def run_state(client: ResearchClient, task_id: str) -> str | None:
    """completed / failed / ... once settled, the stage while going, None if there is no run."""
    try:
        snap = client.snapshot(task_id)
    except UnknownTaskError:
        return None
    return snap.end_state or (snap.progress.stage if snap.progress else "pending")


def newest_completed(client: ResearchClient, candidates: list[str]) -> str | None:
    for task_id in candidates:
        if run_state(client, task_id) == "completed":
            return task_id
    return None


@_permanent_failures_are_final
def fire(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = FireInput.model_validate(raw)
    client = _client()
    log.info("activity.start", activity="schedule.fire", task_id=inp.run_id, kind=inp.kind)
    compare_with = newest_completed(client, inp.candidates)
    previous_state = run_state(client, inp.previous) if inp.previous else None
    result = FireResult(
        outcome="started",
        run_id=inp.run_id,
        previous_state=previous_state,
        compare_with=compare_with,
        execution=inp.execution,
    )
    if run_state(client, inp.run_id) is not None:
        result.already_existed = True
        return result.model_dump(mode="json")

    running = previous_state is not None and previous_state not in SETTLED_STATES
    decision = decide(
        inp.overlap, previous_running=running, buffer_taken=inp.buffer_taken, kind=inp.kind
    )
    if decision == "skip" or decision == "buffer":
        result.outcome = "skipped" if decision == "skip" else "buffered"
        _notify(inp, result, f"{result.outcome}: the previous run {inp.previous} is still going")
        return result.model_dump(mode="json")
    if decision == "cancel-and-start" and inp.previous is not None:
        try:
            client.cancel(inp.previous, f"superseded by {inp.run_id} (schedule {inp.schedule})")
            result.cancelled_previous = True
        except TaskStateError:
            pass  # it ended meanwhile
    config = inp.config.model_copy(update={"schedule": inp.schedule, "compare_with": compare_with})
    try:
        client.start(config, inp.run_id, schedule=inp.schedule)
    except TaskStateError:
        result.already_existed = True  # started by a racing attempt: still one run
    message = f"started ({inp.kind} fire at {inp.fire_time})"
    if compare_with:
        message += f"; compared with {compare_with}"
    _notify(inp, result, message)
    return result.model_dump(mode="json")


def _notify(inp: FireInput, result: FireResult, message: str) -> None:
    deps().notifier.send(
        Notice(
            task_id=inp.run_id,
            kind="scheduled_run",
            message=f"schedule {inp.schedule}: run {inp.run_id} {message}",
            data={
                "schedule": inp.schedule,
                "fire_time": inp.fire_time,
                "kind": inp.kind,
                "outcome": result.outcome,
            },
        )
    )
