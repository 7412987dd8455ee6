"""Schedules on the real engine: fires start runs named by their fire time, overlap policies,
idempotent control, catch-up after downtime, and "what changed" between runs.

The worker runs in this process with the LLM mocked by respx (`ScriptedLLM`); intervals
are a few seconds, and every wait is on observable state (the loop's custom status, the
runs' states), never a fixed sleep.
"""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import respx

from fte import names
from fte.client import ResearchClient
from fte.contracts import RunConfig
from fte.dapr_stack import EmbeddedStack
from fte.llm import LLMConfig
from fte.schedule.client import ScheduleClient, UnknownScheduleError, make_spec
from fte.schedule.contracts import FireRecord, ScheduleControl, ScheduleSpec, ScheduleStatus
from fte.schedule.timing import parse_utc, run_id
from fte.wiring import research_worker
from fte.worker import WorkflowWorker
from tests.pipeline.conftest import SUB_QUESTIONS, TEST_KEY, install
from tests.support.processes import wait_for
from tests.support.scripted_llm import PLANNER, ScriptedLLM

pytestmark = pytest.mark.engine

TIMEOUT_S = 120
RUN_ID = re.compile(r"^(?P<name>.+)-(?P<time>\d{8}T\d{6}Z)$")


def make(name: str, corpus: Path, every: str = "2s", **overrides: Any) -> ScheduleSpec:
    args: dict[str, Any] = {
        "name": name,
        "run": RunConfig(query="How do durable workflows stay reliable?", corpus_dir=str(corpus)),
        "every": every,
        "cron": None,
        "tz": "UTC",
        "start_at": None,
        "end_at": None,
        "overlap": "skip",
        "catchup_window": "1h",
        "jitter": "",
        "min_interval_s": 1.0,
    }
    return make_spec(**(args | overrides))


@pytest.fixture
def schedules(
    pipeline_worker: WorkflowWorker, research: ResearchClient
) -> Iterator[ScheduleClient]:
    client = ScheduleClient(research)
    yield client
    # Never leave a schedule firing into the next test on the shared stack.
    for view in client.all():
        client.remove(view.name)


@pytest.fixture
def name() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


def status_when(
    client: ScheduleClient, name: str, ready: Callable[[ScheduleStatus], bool], what: str
) -> ScheduleStatus:
    seen: list[ScheduleStatus] = []

    def check() -> bool:
        status = client.get(name).status
        if status is not None and ready(status):
            seen.append(status)
            return True
        return False

    wait_for(check, what, timeout=TIMEOUT_S)
    return seen[-1]


def settle(research: ResearchClient, task_ids: list[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for task_id in task_ids:
        snap = research.wait(task_id, timeout_s=TIMEOUT_S)
        states[task_id] = snap.end_state or snap.runtime_status
    return states


def pause(client: ScheduleClient, name: str) -> ScheduleStatus:
    status = client.wait_applied(name, client.control(name, "pause")).status
    assert status is not None and status.paused
    return status


def started_runs(status: ScheduleStatus) -> list[str]:
    return [r.run_id for r in status.recent if r.outcome == "started"]


def test_fires_start_runs_named_by_their_fire_time_and_compare_with_the_last(
    schedules: ScheduleClient,
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    name: str,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    schedules.add(make(name, corpus, every="2s"))
    status_when(schedules, name, lambda s: s.started >= 3, "three runs to start")
    status = pause(schedules, name)
    assert status is not None
    runs = started_runs(status)
    states = settle(research, runs)

    # Each run is named <schedule>-<UTC fire time>; fire times are whole 2 s steps.
    fired = [r for r in status.recent if r.outcome == "started"]
    for record in fired:
        assert record.run_id == run_id(name, parse_utc(record.fire_time))
        assert parse_utc(record.fire_time).timestamp() % 2 == 0
    assert [r.task_id for r in schedules.runs(name)] == sorted(runs, reverse=True)
    assert status.fires == status.started + status.skipped_overlap + status.skipped_missed
    # One planner call per run: no fire started a run twice.
    assert set(states.values()) == {"completed"}
    assert llm.calls[PLANNER] == len(runs)

    # Every run after the first is compared with the one before it.
    first = research.report(runs[0])
    assert first["changes"] is None
    for previous, current in zip(runs, runs[1:], strict=False):
        report = research.report(current)
        assert report["changes"]["previous_task_id"] == previous
        assert report["changes"]["summary"].startswith(f"Nothing new since run {previous}")
        assert f"## What changed since {previous}" in report["markdown"]


def test_a_new_source_between_two_runs_shows_in_the_report_and_the_diff(
    schedules: ScheduleClient,
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    name: str,
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    schedules.add(make(name, corpus, every="1h"))
    schedules.wait_started(name)
    first = trigger(schedules, research, name)
    (corpus / "timers-2.md").write_text(
        "# Timer storage\n\nDurable timers fire after a restart because the scheduler keeps "
        "them in etcd.\n"
    )
    second = trigger(schedules, research, name, after=first)

    report = research.report(second)
    changes = report["changes"]
    assert changes["previous_task_id"] == first
    assert [s["title"] for s in changes["sources_added"]] == ["Timer storage"]
    assert changes["sources_removed"] == []
    assert any("etcd" in c["text"] for c in changes["claims_new"])
    assert changes["summary"].startswith(f"Since run {first}")
    assert "1 new source passage (from “Timer storage”)" in changes["summary"]
    assert "**New sources:**" in report["markdown"]
    # `fte schedule diff` (the last two completed runs) says the same.
    assert schedules.diff(name).model_dump(mode="json") == changes
    assert schedules.diff(name, first, second).model_dump(mode="json") == changes


def trigger(
    schedules: ScheduleClient, research: ResearchClient, name: str, after: str | None = None
) -> str:
    if after is not None:  # a trigger in the same second would name the same run
        moment = parse_utc(RUN_ID.match(after)["time"])  # type: ignore[index]
        wait_for(lambda: datetime.now(UTC) >= moment + timedelta(seconds=1), "the next second")
    view = schedules.wait_applied(name, schedules.control(name, "trigger"))
    assert view.status is not None
    task_id = view.status.recent[-1].run_id
    assert research.wait(task_id, timeout_s=TIMEOUT_S).end_state == "completed"
    return task_id


@pytest.mark.parametrize("overlap", ["skip", "buffer-one", "cancel-previous"])
def test_overlap_policies_while_the_previous_run_is_going(
    schedules: ScheduleClient,
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    name: str,
    overlap: str,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    release = llm.hold(PLANNER)  # every run waits at its planner call until released
    schedules.add(make(name, corpus, every="2s", overlap=overlap))
    first = status_when(schedules, name, lambda s: s.started >= 1, "the first run")
    [a] = started_runs(first)

    if overlap == "skip":
        status = status_when(schedules, name, lambda s: s.skipped_overlap >= 2, "two skips")
        assert started_runs(status) == [a] and status.last_run == a
        status = pause(schedules, name)
        release.set()
        assert settle(research, [a]) == {a: "completed"}
    elif overlap == "buffer-one":
        status = status_when(
            schedules,
            name,
            lambda s: s.buffered is not None and s.skipped_overlap >= 1,
            "a buffered fire and a skipped one",
        )
        assert status.buffered is not None
        b = run_id(name, parse_utc(status.buffered))
        assert started_runs(status) == [a]
        release.set()
        # The buffered fire starts, under its own fire time, once the first run ends.
        status = status_when(schedules, name, lambda s: b in started_runs(s), "the buffered run")
        status = pause(schedules, name)
        assert status is not None
        states = settle(research, started_runs(status))
        assert states[a] == states[b] == "completed"
        assert research.report(b)["changes"]["previous_task_id"] == a
    else:
        status = status_when(schedules, name, lambda s: s.started >= 2, "a second run")
        status = pause(schedules, name)
        assert status is not None
        release.set()
        runs = started_runs(status)
        states = settle(research, runs)
        # Each fire cancelled the run before it; the last one completed.
        assert [states[r] for r in runs] == ["cancelled"] * (len(runs) - 1) + ["completed"]
        assert any(r.detail == "cancelled the previous run" for r in status.recent)


def test_control_requests_are_idempotent(
    schedules: ScheduleClient, research: ResearchClient, corpus: Path, name: str
) -> None:
    schedules.add(make(name, corpus, every="1h"))
    schedules.wait_started(name)
    # The same request delivered twice (a retried send) is applied once.
    request = ScheduleControl(action="trigger", request_id="same-request")
    for _ in range(2):
        research.workflows.raise_workflow_event(
            names.schedule_instance(name), names.SCHEDULE_CONTROL, data=request.model_dump()
        )
    view = schedules.wait_applied(name, "same-request")
    paused = pause(schedules, name)
    assert paused.triggers == 1 and paused.seen_requests.count("same-request") == 1
    again = pause(schedules, name)  # pausing a paused schedule changes nothing else
    assert again.paused and again.fires == 1
    assert view.status is not None
    settle(research, started_runs(again))
    assert schedules.remove(name) is True
    assert schedules.remove(name) is False
    with pytest.raises(UnknownScheduleError):
        schedules.control(name, "resume")
    assert name not in [v.name for v in schedules.all()]
    assert research.workflow_state(names.schedule_instance(name)) is None  # history purged


def _delete_timers(etcd_port: int, instance: str) -> int:
    """Delete the workflow's durable timers from the scheduler's etcd: a lost timer."""
    prefix = f"dapr/jobs/actorreminder||default||dapr.internal.default.fte.workflow||{instance}||"
    key = base64.b64encode(f"{prefix}timer-".encode()).decode()
    end = base64.b64encode(f"{prefix}timer.".encode()).decode()  # "." follows "-"
    request = urllib.request.Request(
        f"http://127.0.0.1:{etcd_port}/v3/kv/deleterange",
        data=json.dumps({"key": key, "range_end": end}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.loads(response.read()).get("deleted", 0))


def test_a_schedule_whose_timer_was_lost_is_woken_and_fires_again(
    schedules: ScheduleClient,
    research: ResearchClient,
    embedded_stack: EmbeddedStack,
    mock_llm: respx.MockRouter,
    corpus: Path,
    name: str,
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    schedules.add(make(name, corpus, every="3s"))
    etcd_port = embedded_stack.ports["scheduler_etcd_client"]
    # Lose the timer the loop waits on (retried if it fired just before the deletion).
    for _ in range(5):
        waiting = schedules.wait_started(name).status
        assert waiting is not None and waiting.wake_at is not None
        assert _delete_timers(etcd_port, names.schedule_instance(name)) >= 1
        wake_at = datetime.fromisoformat(waiting.wake_at)
        time.sleep(max(0.0, (wake_at - datetime.now(UTC)).total_seconds()) + 3)
        stuck = schedules.get(name).status
        assert stuck is not None
        if stuck.executions == waiting.executions:
            break
    else:
        pytest.fail("the schedule's timer fired before every deletion")
    assert schedules.wake_overdue(datetime.now(UTC), grace=timedelta(0)) == [name]
    # The loop sets its timer afresh, makes up the latest missed fire and goes on firing.
    after = status_when(
        schedules, name, lambda s: s.fires >= stuck.fires + 2, "fires after the wake-up"
    )
    assert after.started >= 1
    assert after.fires == after.started + after.skipped_overlap + after.skipped_missed
    settle(research, started_runs(pause(schedules, name)))


def test_fires_missed_while_no_worker_ran_are_caught_up_once(
    private_stack: EmbeddedStack, mock_llm: respx.MockRouter, corpus: Path, name: str
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    config = LLMConfig(api_key=TEST_KEY, backoff_base_s=0.05)  # type: ignore[arg-type]
    with ResearchClient(endpoint) as research:
        client = ScheduleClient(research)
        with research_worker(endpoint, llm_config=config):
            client.add(make(name, corpus, every="2s"))
            before = status_when(client, name, lambda s: s.started >= 1, "the first fire")
            settle(research, started_runs(before))
        # No worker: the timers come due, nothing runs. Wait out three fire times.
        down_since = datetime.now(UTC)
        wait_for(
            lambda: datetime.now(UTC) > down_since + timedelta(seconds=6.5),
            "three fire times to pass",
        )
        with research_worker(endpoint, llm_config=config):
            after = status_when(
                client,
                name,
                lambda s: s.skipped_missed >= 1 and bool(_started_since(s, down_since)),
                "the catch-up after downtime",
            )
            pause(client, name)
            runs = [r.task_id for r in client.runs(name)]
            settle(research, runs)
            final = client.get(name).status
    assert final is not None
    missed = [r for r in after.recent if r.outcome == "missed"]
    # One run for the downtime, under the latest fire time: the latest missed fire made up
    # as a catch-up, or, when the worker came back just as a fire was due, that fire on
    # time. Either way the earlier fires are counted as missed, never run.
    resumed = min(_started_since(after, down_since), key=lambda r: parse_utc(r.fire_time))
    assert missed and all(parse_utc(resumed.fire_time) > parse_utc(r.fire_time) for r in missed)
    assert after.skipped_missed >= 2
    assert final.fires == final.started + final.skipped_overlap + final.skipped_missed
    assert len(runs) == len(set(runs)) == final.started
    assert llm.calls[PLANNER] == final.started


def _started_since(status: ScheduleStatus, moment: datetime) -> list[FireRecord]:
    return [r for r in status.recent if r.outcome == "started" and parse_utc(r.fire_time) >= moment]
