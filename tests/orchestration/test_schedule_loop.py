"""The schedule loop on the orchestration harness: next fire, catch-up, overlap bookkeeping,
control events, continue_as_new; no sidecar.

Each execution of the loop is one harness: it waits (an event wait and a timer), fires or
applies a control event, and ends in `ContinuedAsNew`, whose input starts the next one.
The fire activity is answered by the test with the `FireResult` the real activity would
return, so the loop's bookkeeping is checked without any run being started.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fte import names
from fte.contracts import RunConfig
from fte.schedule.contracts import (
    FireInput,
    FireResult,
    ScheduleControl,
    ScheduleInput,
    ScheduleSpec,
    ScheduleState,
    ScheduleStatus,
)
from fte.schedule.timing import jitter
from fte.wiring import register
from tests.support.orchestration import (
    START,
    Activity,
    Completed,
    ContinuedAsNew,
    Timer,
    WorkflowHarness,
)

RUN = RunConfig(query="What is new on durable execution?", corpus_dir="/corpus")
HOUR = timedelta(hours=1)
# START is 2030-01-01T00:00 (naive UTC, as the engine's clock); an hourly schedule added then.
CREATED = START.replace(tzinfo=UTC)


def spec(**fields: Any) -> ScheduleSpec:
    defaults: dict[str, Any] = {
        "name": "hourly",
        "run": RUN,
        "every_s": 3600.0,
        "catchup_window_s": 600.0,
        "buffer_poll_s": 30.0,
        "created_at": CREATED.isoformat(),
    }
    return ScheduleSpec(**(defaults | fields))


def first_input(**fields: Any) -> dict[str, Any]:
    state = ScheduleState(cursor=CREATED.isoformat())
    return ScheduleInput(spec=spec(**fields), state=state).model_dump(mode="json")


def begin(inp: dict[str, Any], *, now: datetime = START) -> WorkflowHarness:
    h = WorkflowHarness(register, names.SCHEDULE, instance_id="schedule:hourly", now=now)
    h.start(inp)
    return h


def timer(h: WorkflowHarness) -> Timer:
    [t] = [t for t in h.pending if isinstance(t, Timer)]
    return t


def status(h: WorkflowHarness) -> ScheduleStatus:
    assert h.custom_status is not None
    return ScheduleStatus.model_validate_json(h.custom_status)


def ended(h: WorkflowHarness) -> ScheduleState:
    assert isinstance(h.result, ContinuedAsNew), h.result
    return ScheduleInput.model_validate(h.result.input).state


def fire_input(h: WorkflowHarness) -> FireInput:
    [activity] = [a for a in h.pending if isinstance(a, Activity)]
    assert activity.name == names.SCHEDULE_FIRE
    return FireInput.model_validate(activity.input)


def answer(h: WorkflowHarness, outcome: str = "started", **fields: Any) -> None:
    inp = fire_input(h)
    echoed = {"outcome": outcome, "run_id": inp.run_id, "execution": inp.execution}
    result = FireResult.model_validate(echoed | fields)
    h.complete(names.SCHEDULE_FIRE, result.model_dump(mode="json")).step()


def control(h: WorkflowHarness, action: str, request_id: str = "req-1", reason: str = "") -> None:
    payload = ScheduleControl.model_validate(
        {"action": action, "request_id": request_id, "reason": reason}
    )
    h.raise_event(names.SCHEDULE_CONTROL, payload.model_dump(mode="json")).step()


def test_an_execution_waits_for_the_next_fire_and_a_control_event() -> None:
    h = begin(first_input())
    assert h.actions == [
        Timer(None, "externalEvent", names.SCHEDULE_CONTROL),
        Timer(datetime(2030, 1, 1, 1, 0)),
    ]
    shown = status(h)
    assert shown.next_fire == "2030-01-01T01:00:00+00:00" and not shown.paused
    assert shown.executions == 1


def test_a_fire_starts_the_run_with_a_deterministic_id_and_continues_as_new() -> None:
    h = begin(first_input())
    h.fire(timer(h)).step()
    inp = fire_input(h)
    assert (inp.run_id, inp.kind, inp.previous, inp.overlap) == (
        "hourly-20300101T010000Z",
        "scheduled",
        None,
        "skip",
    )
    assert inp.config == RUN
    answer(h)
    state = ended(h)
    assert (state.fires, state.started, state.last_run) == (1, 1, "hourly-20300101T010000Z")
    assert state.cursor == "2030-01-01T01:00:00+00:00"
    assert [(r.run_id, r.outcome) for r in state.recent] == [("hourly-20300101T010000Z", "started")]
    assert h.replay() == h.raw_actions

    # The next execution waits for 02:00 and names the first run as previous and candidate.
    following = h.next_execution()
    assert timer(following).fire_at == datetime(2030, 1, 1, 2, 0)
    following.fire(timer(following)).step()
    second = fire_input(following)
    assert second.run_id == "hourly-20300101T020000Z"
    assert second.previous == "hourly-20300101T010000Z"
    assert second.candidates == ["hourly-20300101T010000Z"]


def test_history_per_execution_stays_the_same_size_over_many_fires() -> None:
    h = begin(first_input())
    sizes = []
    for _ in range(50):
        h.fire(timer(h)).step()
        candidates = fire_input(h).candidates
        answer(h, compare_with=candidates[0] if candidates else None)
        sizes.append(sum(len(e.SerializeToString()) for e in h.history))
        state = ended(h)
        h = h.next_execution()
    assert (state.fires, state.started, state.executions) == (50, 50, 50)
    assert len(state.recent) == 20  # bounded
    # The input grows until the bounded lists are full, then the history size stays put.
    assert max(sizes[25:]) == min(sizes[25:])


def test_catch_up_makes_up_the_latest_fire_in_the_window_and_counts_the_rest() -> None:
    h = begin(first_input())
    # The worker was down from 00:30 to 04:05: fires at 01:00 ... 04:00 were missed.
    h.now = datetime(2030, 1, 1, 4, 5)
    h.fire(timer(h)).step()
    inp = fire_input(h)
    assert (inp.run_id, inp.kind) == ("hourly-20300101T040000Z", "catch-up")
    answer(h)
    state = ended(h)
    assert (state.fires, state.started, state.skipped_missed) == (4, 1, 3)
    assert state.cursor == "2030-01-01T04:00:00+00:00"
    missed, made_up = state.recent
    assert (missed.outcome, missed.fire_time) == ("missed", "2030-01-01T01:00:00+00:00")
    assert "3 fire(s)" in missed.detail
    assert (made_up.run_id, made_up.kind) == ("hourly-20300101T040000Z", "catch-up")


def test_fires_outside_the_catch_up_window_are_all_counted_as_missed() -> None:
    h = begin(first_input())
    h.now = datetime(2030, 1, 1, 4, 20)  # 20 minutes after 04:00, the window is 10
    h.fire(timer(h)).step()
    assert not [a for a in h.actions if isinstance(a, Activity)]
    state = ended(h)
    assert (state.fires, state.started, state.skipped_missed) == (4, 0, 4)
    assert timer(h.next_execution()).fire_at == datetime(2030, 1, 1, 5, 0)


def test_jitter_delays_the_wake_up_but_not_the_run_id() -> None:
    jittered = first_input(jitter_s=300)
    h = begin(jittered)
    due = datetime(2030, 1, 1, 1, 0, tzinfo=UTC)
    delay = jitter(ScheduleInput.model_validate(jittered).spec, due)
    assert timedelta(0) < delay < timedelta(minutes=5)
    assert timer(h).fire_at == (due + delay).replace(tzinfo=None)
    h.fire(timer(h)).step()
    assert fire_input(h).run_id == "hourly-20300101T010000Z"


def test_a_skipped_fire_is_counted_and_the_previous_run_kept() -> None:
    h = begin(first_input())
    h.fire(timer(h)).step()
    answer(h)
    h = h.next_execution()
    h.fire(timer(h)).step()
    answer(h, "skipped", previous_state="analysing")
    state = ended(h)
    assert (state.fires, state.started, state.skipped_overlap) == (2, 1, 1)
    assert state.last_run == "hourly-20300101T010000Z"
    assert state.recent[-1].detail == "previous run analysing"


# What Dapr 1.18 delivers after a crash: the previous execution's fire activity ran again
# and its result completed this execution's task of the same sequence number.
STALE_START = {
    "outcome": "started",
    "run_id": "hourly-20300101T010000Z",
    "execution": 1,
    "already_existed": True,
}


def second_fire() -> WorkflowHarness:
    """The 02:00 fire of an hourly schedule whose 01:00 fire started a run."""
    h = begin(first_input())
    h.fire(timer(h)).step()
    answer(h)
    h = h.next_execution()
    h.fire(timer(h)).step()
    return h


def test_an_answer_to_an_earlier_fire_is_not_recorded_and_the_fire_is_asked_again() -> None:
    h = second_fire()
    asked = fire_input(h)
    assert (asked.run_id, asked.execution) == ("hourly-20300101T020000Z", 2)
    h.complete(names.SCHEDULE_FIRE, STALE_START).step()
    # Not counted as a start of 02:00: the same fire is asked again.
    assert fire_input(h) == asked
    answer(h, "skipped", previous_state="analysing")
    state = ended(h)
    assert (state.fires, state.started, state.skipped_overlap) == (2, 1, 1)
    assert state.last_run == "hourly-20300101T010000Z"
    assert h.replay() == h.raw_actions


def test_an_answer_of_the_same_fire_from_an_earlier_execution_is_asked_again() -> None:
    # buffer-one polls one fire time over several executions: same run ID, other execution.
    h = begin(first_input(overlap="buffer-one"))
    h.fire(timer(h)).step()
    answer(h, "buffered", previous_state="writing")
    h = h.next_execution()
    h.fire(timer(h)).step()
    asked = fire_input(h)
    assert (asked.kind, asked.execution) == ("buffered", 2)
    stale = {"outcome": "buffered", "run_id": asked.run_id, "execution": 1}
    h.complete(names.SCHEDULE_FIRE, stale).step()
    assert fire_input(h) == asked
    answer(h, "started")
    state = ended(h)
    assert state.buffered is None and (state.started, state.fires) == (1, 1)


def test_a_fire_answered_only_by_other_fires_is_counted_as_failed() -> None:
    h = second_fire()
    for _ in range(3):
        h.complete(names.SCHEDULE_FIRE, STALE_START).step()
    state = ended(h)
    assert (state.fires, state.started, state.failed) == (2, 1, 1)
    assert state.recent[-1].outcome == "failed"
    assert "other fires' results" in state.recent[-1].detail


def test_an_execution_recorded_before_the_check_replays_without_it() -> None:
    # A worker upgraded mid-execution: the history has no patch, so the replay must take
    # the answer as before (asking again would not match the recorded history).
    h = second_fire()
    for event in h.history:
        if event.HasField("workflowStarted"):
            event.workflowStarted.version.ClearField("patches")
    h.complete(names.SCHEDULE_FIRE, STALE_START).step()
    state = ended(h)
    assert (state.fires, state.started, state.last_run) == (2, 2, "hourly-20300101T020000Z")


def test_buffer_one_holds_a_fire_and_polls_until_the_previous_run_ends() -> None:
    h = begin(first_input(overlap="buffer-one"))
    h.fire(timer(h)).step()
    answer(h, "buffered", previous_state="writing")
    state = ended(h)
    assert state.buffered == "2030-01-01T01:00:00+00:00" and state.started == 0
    h = h.next_execution()
    # Polls every buffer_poll_s while a fire is buffered, well before the 02:00 fire.
    assert timer(h).fire_at == datetime(2030, 1, 1, 1, 0, 30)
    h.fire(timer(h)).step()
    inp = fire_input(h)
    assert (inp.kind, inp.run_id, inp.buffer_taken) == ("buffered", "hourly-20300101T010000Z", True)
    answer(h, "buffered")  # still going: nothing recorded, keep waiting
    assert ended(h).buffered == "2030-01-01T01:00:00+00:00"
    assert ended(h).recent[-1].outcome == "buffered"
    h = h.next_execution()
    h.fire(timer(h)).step()
    answer(h, "started", compare_with="hourly-20291231T230000Z")
    state = ended(h)
    assert state.buffered is None and state.started == 1 and state.fires == 1
    assert state.last_run == "hourly-20300101T010000Z"
    assert state.last_completed == "hourly-20291231T230000Z"


def test_pause_and_resume_skip_the_fires_in_between_and_are_idempotent() -> None:
    h = begin(first_input())
    control(h, "pause", "p1", reason="holiday")
    state = ended(h)
    assert state.paused and state.pause_reason == "holiday"
    h = h.next_execution()
    # Paused: only the control event is awaited.
    assert h.actions == [Timer(None, "externalEvent", names.SCHEDULE_CONTROL)]
    assert status(h).paused and status(h).next_fire is None
    control(h, "pause", "p1", reason="again")  # the same request once more: ignored
    assert ended(h).pause_reason == "holiday"
    h = h.next_execution()
    h.now = datetime(2030, 1, 1, 3, 30)
    control(h, "resume", "r1")
    state = ended(h)
    assert not state.paused and state.skipped_paused == 3 and state.fires == 3
    assert state.cursor == "2030-01-01T03:00:00+00:00"
    h = h.next_execution()
    assert timer(h).fire_at == datetime(2030, 1, 1, 4, 0)
    control(h, "resume", "r2")  # resuming a running schedule changes nothing
    assert ended(h).skipped_paused == 3


def test_trigger_fires_now_even_when_paused_and_keeps_the_cadence() -> None:
    h = begin(first_input())
    control(h, "pause", "p1")
    h = h.next_execution()
    h.now = datetime(2030, 1, 1, 0, 20, 5, 500000)
    control(h, "trigger", "t1")
    inp = fire_input(h)
    assert (inp.kind, inp.run_id) == ("trigger", "hourly-20300101T002005Z")
    answer(h)
    state = ended(h)
    assert (state.triggers, state.started, state.fires) == (1, 1, 1)
    assert state.cursor == CREATED.isoformat()  # the schedule's own fires are unaffected


def test_a_control_event_during_a_fire_is_applied_in_the_same_execution() -> None:
    h = begin(first_input())
    h.fire(timer(h)).step()
    payload = ScheduleControl(action="pause", request_id="p1", reason="while firing")
    h.raise_event(names.SCHEDULE_CONTROL, payload.model_dump(mode="json")).step()
    answer(h)
    state = ended(h)
    assert state.started == 1 and state.paused and state.seen_requests == ["p1"]


def test_events_beyond_the_first_are_carried_into_the_next_execution() -> None:
    h = begin(first_input())
    first = ScheduleControl(action="pause", request_id="p1")
    second = ScheduleControl(action="resume", request_id="r1")
    h.raise_event(names.SCHEDULE_CONTROL, first.model_dump(mode="json"))
    h.raise_event(names.SCHEDULE_CONTROL, second.model_dump(mode="json")).step()
    assert isinstance(h.result, ContinuedAsNew)
    assert [name for name, _ in h.result.carried] == [names.SCHEDULE_CONTROL]
    following = h.next_execution()  # applies the carried resume at once
    assert ended(following).seen_requests == ["p1", "r1"]
    assert not ended(following).paused


def test_wake_only_starts_the_next_execution() -> None:
    h = begin(first_input())
    control(h, "wake", reason="its timer did not fire")
    state = ended(h)
    assert (state.fires, state.started, state.executions, state.removed) == (0, 0, 1, False)
    assert state.seen_requests == ["req-1"]
    following = h.next_execution()
    assert timer(following).fire_at == datetime(2030, 1, 1, 1, 0)  # the same fire, waited for


def test_remove_ends_the_loop() -> None:
    h = begin(first_input())
    control(h, "remove", "x1")
    assert isinstance(h.result, Completed)
    final = ScheduleStatus.model_validate(h.result.output)
    assert final.removed and final.seen_requests == ["x1"]


def test_end_at_leaves_the_loop_waiting_only_for_control() -> None:
    h = begin(first_input(end_at="2030-01-01T00:30:00+00:00"))
    assert h.actions == [Timer(None, "externalEvent", names.SCHEDULE_CONTROL)]
    assert status(h).next_fire is None


def test_a_fire_that_fails_for_good_is_counted_and_the_schedule_goes_on() -> None:
    h = begin(first_input())
    h.fire(timer(h)).step()
    h.fail(names.SCHEDULE_FIRE, RuntimeError("state store unreachable")).step()
    # The activity's retry policy runs it again first (a retry timer), then gives up.
    h.run_until_blocked({names.SCHEDULE_FIRE: fail_always})
    state = ended(h)
    assert (state.fires, state.failed, state.started) == (1, 1, 0)
    assert state.recent[-1].outcome == "failed"
    assert "state store unreachable" in state.recent[-1].detail
    assert timer(h.next_execution()).fire_at == datetime(2030, 1, 1, 2, 0)


def fail_always(_: Any) -> Any:
    raise RuntimeError("state store unreachable")
