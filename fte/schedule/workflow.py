"""The schedule: an eternal workflow, one short execution per wake-up.

Each execution computes the next fire time from the spec and the engine's clock, waits
for whichever comes first, a durable timer or a control event (pause, resume, trigger,
remove), does what is due, and ends with `continue_as_new` carrying the updated state:
its history holds a timer, an event wait and at most a few activities, however long the
schedule lives. Control events that arrive meanwhile are carried into the next execution
(`save_events=True`), so none is lost between two executions.

Orchestration only: fire times come from `fte.schedule.timing` (pure), the start of a run
and the overlap decision from the fire activity, which reads the previous run's state.

Catch-up: a wake-up finds every fire time since the last handled one that is due. The
latest of them is made up if the loop woke no later than `catchup_window_s` (at least
`ON_TIME_GRACE`) after it was due: one run, like a Kubernetes CronJob, because asking the
same question five times in a row after an outage tells nothing new. The earlier ones,
and the latest too when it is outside the window, are counted as missed and shown by
`fte schedule list/show`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from datetime import timedelta
from typing import Any

import dapr.ext.workflow as wf
import structlog

from fte import names
from fte.retry_policies import IO_RETRY
from fte.schedule.contracts import (
    FireInput,
    FireKind,
    FireRecord,
    FireResult,
    ScheduleControl,
    ScheduleInput,
    ScheduleSpec,
    ScheduleState,
    ScheduleStatus,
)
from fte.schedule.timing import as_utc, due_fires, iso, jitter, next_fire, parse_utc, run_id

log = structlog.get_logger(__name__)

Flow = Generator[Any, Any, Any]

# A late fire is labelled catch-up (rather than scheduled) past this lateness.
_LATE = timedelta(seconds=60)
# A fire this late is on time whatever the catch-up window: a wake-up is always a little
# late (the engine's timer, a busy worker), and `--catchup-window 0` means "no catching up",
# not "never fire".
ON_TIME_GRACE = timedelta(seconds=5)
# Executions that record a fire's answer only once it is that fire's (FireResult.answers).
STALE_ANSWERS_PATCH = "fire-answers-checked"
# Asks per fire before it counts as failed: a stale answer comes at most once per
# redelivery, so a second ask almost always gets the real one.
_ASKS = 3


def schedule_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    inp = ScheduleInput.model_validate(raw)
    spec, state = inp.spec, inp.state
    state.executions += 1
    if state.removed:  # a replayed input of a removed schedule: nothing to do
        return status(spec, state).model_dump(mode="json")
    now = as_utc(ctx.current_utc_datetime)
    due = None if state.paused else next_fire(spec, parse_utc(state.cursor))
    wake = due + jitter(spec, due) if due is not None else None
    if state.buffered is not None and not state.paused:
        poll = now + timedelta(seconds=spec.buffer_poll_s)
        wake = poll if wake is None else min(wake, poll)
    ctx.set_custom_status(status(spec, state, due=due, wake=wake).model_dump_json())

    control = ctx.wait_for_external_event(names.SCHEDULE_CONTROL)
    timer = ctx.create_timer(wake) if wake is not None else None
    winner = yield wf.when_any([control] if timer is None else [control, timer])
    if winner is timer:
        yield from wake_up(ctx, spec, state)
    # A control event that arrived while the fire ran is applied now; later ones wait in
    # the next execution's inbox.
    if control.is_complete:
        yield from apply_control(
            ctx, spec, state, ScheduleControl.model_validate(control.get_result())
        )
    if state.removed:
        final = status(spec, state)
        ctx.set_custom_status(final.model_dump_json())
        if not ctx.is_replaying:
            log.info("schedule removed", schedule=spec.name)
        return final.model_dump(mode="json")
    ctx.continue_as_new(
        ScheduleInput(spec=spec, state=state).model_dump(mode="json"), save_events=True
    )
    return None


def wake_up(ctx: wf.DaprWorkflowContext, spec: ScheduleSpec, state: ScheduleState) -> Flow:
    """Start what is due: a buffered fire whose previous run may have ended, then the
    latest fire time since the cursor (catch-up rules in the module docstring)."""
    now = as_utc(ctx.current_utc_datetime)
    if state.buffered is not None:
        yield from fire(ctx, spec, state, parse_utc(state.buffered), "buffered")
    cursor = parse_utc(state.cursor)
    latest, count = due_fires(spec, cursor, now)
    if latest is None:
        return
    late = now - (latest + jitter(spec, latest))
    in_window = late <= max(timedelta(seconds=spec.catchup_window_s), ON_TIME_GRACE)
    missed = count - 1 if in_window else count
    if missed:
        first = next_fire(spec, cursor)
        assert first is not None
        state.fires += missed
        state.skipped_missed += missed
        state.remember(
            FireRecord(
                fire_time=iso(first),
                run_id=run_id(spec.name, first),
                kind="catch-up",
                outcome="missed",
                detail=f"{missed} fire(s) from {iso(first)} missed while nothing ran "
                f"(woke {int(late.total_seconds())}s after {iso(latest)})",
            )
        )
    state.cursor = iso(latest)
    if in_window:
        kind: FireKind = "catch-up" if count > 1 or late > _LATE else "scheduled"
        yield from fire(ctx, spec, state, latest, kind)


def apply_control(
    ctx: wf.DaprWorkflowContext, spec: ScheduleSpec, state: ScheduleState, control: ScheduleControl
) -> Flow:
    """Pause, resume, trigger or remove; a request seen before is ignored (idempotent)."""
    if control.request_id in state.seen_requests:
        return
    state.saw(control.request_id)
    now = as_utc(ctx.current_utc_datetime)
    if not ctx.is_replaying:
        log.info("schedule control", schedule=spec.name, action=control.action)
    if control.action == "pause":
        if not state.paused and state.buffered is not None:
            state.skipped_paused += 1
            state.buffered = None
        state.paused = True
        state.pause_reason = control.reason or state.pause_reason
    elif control.action == "resume":
        if state.paused:
            # Fire times that passed while paused are not made up.
            latest, count = due_fires(spec, parse_utc(state.cursor), now)
            state.fires += count
            state.skipped_paused += count
            if latest is not None:
                state.cursor = iso(latest)
        state.paused = False
        state.pause_reason = ""
    elif control.action == "trigger":
        state.triggers += 1
        yield from fire(ctx, spec, state, now.replace(microsecond=0), "trigger")
    elif control.action == "remove":
        state.removed = True
    # "wake": nothing to change; continuing as new is the point.


def fire(
    ctx: wf.DaprWorkflowContext,
    spec: ScheduleSpec,
    state: ScheduleState,
    fire_time: Any,
    kind: FireKind,
) -> Flow:
    """Let the fire activity start, skip or buffer the run `<schedule>-<fire time>`."""
    rid = run_id(spec.name, fire_time)
    candidates = [r.run_id for r in reversed(state.recent) if r.outcome == "started"]
    if state.last_completed is not None:
        candidates.append(state.last_completed)
    candidates = [c for c in dict.fromkeys(candidates) if c != rid]
    asked = FireInput(
        schedule=spec.name,
        run_id=rid,
        fire_time=iso(fire_time),
        kind=kind,
        overlap=spec.overlap,
        previous=state.last_run,
        buffer_taken=state.buffered is not None,
        candidates=candidates,
        config=spec.run,
        execution=state.executions,
    )
    # Patched in place: an execution recorded before the check replays without it.
    checks_answers = ctx.is_patched(STALE_ANSWERS_PATCH)
    for _ask in range(_ASKS):
        call: Any = ctx.call_activity(names.SCHEDULE_FIRE, input=asked, retry_policy=IO_RETRY)
        try:
            raw = yield call
        except wf.TaskFailedError as exc:
            # The state store or sidecar stayed unreachable through the retries: this fire
            # is lost (counted, shown), the schedule is not.
            message = getattr(getattr(exc, "details", None), "message", None) or str(exc)
            fire_failed(state, asked, str(message))
            return
        result = FireResult.model_validate(raw)
        if not checks_answers or result.answers(asked):
            break
        # Another fire's result (FireResult.answers): the real one is dropped by the
        # engine as a duplicate, so ask again; the fire activity is idempotent.
        if not ctx.is_replaying:
            log.warning(
                "schedule fire answered by another fire; asking again",
                schedule=spec.name,
                run_id=rid,
                answer_for=result.run_id,
                answer_execution=result.execution,
                execution=state.executions,
            )
    else:
        fire_failed(state, asked, f"{_ASKS} answers were other fires' results")
        return
    if result.compare_with is not None:
        state.last_completed = result.compare_with
    if kind == "buffered":
        if result.outcome == "buffered":
            return  # the previous run is still going: keep waiting
        state.buffered = None
    else:
        state.fires += 1
    if result.outcome == "started":
        if not (result.already_existed and state.last_run == rid):
            state.started += 1
        state.last_run = rid
    elif result.outcome == "buffered":
        state.buffered = iso(fire_time)
    else:
        state.skipped_overlap += 1
    detail = f"previous run {result.previous_state}" if result.previous_state else ""
    if result.cancelled_previous:
        detail = "cancelled the previous run"
    state.remember(
        FireRecord(
            fire_time=iso(fire_time), run_id=rid, kind=kind, outcome=result.outcome, detail=detail
        )
    )
    if not ctx.is_replaying:
        log.info(
            "schedule fired", schedule=spec.name, run_id=rid, kind=kind, outcome=result.outcome
        )


def fire_failed(state: ScheduleState, asked: FireInput, reason: str) -> None:
    """Count a fire whose activity gave no answer; a buffered fire tries again instead."""
    if asked.kind == "buffered":
        return
    state.fires += 1
    state.failed += 1
    state.remember(
        FireRecord(
            fire_time=asked.fire_time,
            run_id=asked.run_id,
            kind=asked.kind,
            outcome="failed",
            detail=reason[:200],
        )
    )


def status(
    spec: ScheduleSpec, state: ScheduleState, *, due: Any = None, wake: Any = None
) -> ScheduleStatus:
    return ScheduleStatus(
        name=spec.name,
        description=spec.describe(),
        cursor=state.cursor,
        next_fire=iso(due) if due is not None else None,
        wake_at=iso(wake) if wake is not None else None,
        paused=state.paused,
        pause_reason=state.pause_reason,
        buffered=state.buffered,
        last_run=state.last_run,
        last_completed=state.last_completed,
        fires=state.fires,
        started=state.started,
        skipped_overlap=state.skipped_overlap,
        skipped_missed=state.skipped_missed,
        skipped_paused=state.skipped_paused,
        failed=state.failed,
        triggers=state.triggers,
        executions=state.executions,
        removed=state.removed,
        recent=state.recent,
        seen_requests=state.seen_requests,
    )


ScheduleFn = Callable[[wf.DaprWorkflowContext, Any], Flow]
# Every version of the schedule loop a schedule in flight may run on, as for the
# coordinator (fte.coordinator.VERSIONS): a changed loop is added as a new version and
# made LATEST; an old one stays registered while a schedule may still run on it.
VERSIONS: Mapping[str, ScheduleFn] = {"v1": schedule_workflow}
LATEST = "v1"
