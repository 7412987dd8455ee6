"""Schedule calendar arithmetic and spec validation: fire times, DST, jitter, catch-up counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fte.contracts import RunConfig
from fte.errors import UsageError
from fte.schedule.client import make_spec, parse_duration
from fte.schedule.contracts import ScheduleSpec, ScheduleStatus, format_next_fire
from fte.schedule.policy import decide
from fte.schedule.timing import due_fires, jitter, next_fire, parse_utc, run_id, smallest_gap

NOW = datetime(2026, 11, 26, 6, 59, 0, tzinfo=UTC)
RUN = RunConfig(query="What is new on durable execution?", corpus_dir="/corpus")


def spec(**fields: Any) -> ScheduleSpec:
    fields.setdefault("created_at", NOW.isoformat())
    return ScheduleSpec(name="weekly", run=RUN, **fields)


def utc(text: str) -> datetime:
    return parse_utc(text)


def test_intervals_are_aligned_to_the_epoch_or_to_start_at() -> None:
    every_6h = spec(every_s=6 * 3600)
    assert next_fire(every_6h, NOW) == utc("2026-11-26T12:00:00Z")
    assert next_fire(every_6h, utc("2026-11-26T12:00:00Z")) == utc("2026-11-26T18:00:00Z")
    anchored = spec(every_s=3600, start_at="2026-11-26T07:30:00+00:00")
    assert next_fire(anchored, NOW) == utc("2026-11-26T07:30:00Z")  # start_at itself fires
    assert next_fire(anchored, utc("2026-11-26T07:30:00Z")) == utc("2026-11-26T08:30:00Z")


def test_cron_in_a_time_zone_follows_daylight_saving() -> None:
    monday_7 = spec(cron="0 7 * * MON", tz="Europe/Berlin")
    # 07:00 in Berlin is 06:00 UTC in winter (CET) and 05:00 UTC in summer (CEST).
    assert next_fire(monday_7, utc("2026-03-24T00:00:00Z")) == utc("2026-03-30T05:00:00Z")
    assert next_fire(monday_7, utc("2026-03-17T00:00:00Z")) == utc("2026-03-23T06:00:00Z")
    # 02:30 does not exist on 29 March 2026 in Berlin: cronsim fires once, at 03:00 CEST.
    nightly = spec(cron="30 2 * * *", tz="Europe/Berlin")
    assert next_fire(nightly, utc("2026-03-28T12:00:00Z")) == utc("2026-03-29T01:00:00Z")
    # ... and 02:30 happens twice on 25 October 2026: it fires once.
    first = next_fire(nightly, utc("2026-10-24T12:00:00Z"))
    assert first == utc("2026-10-25T00:30:00Z")
    assert next_fire(nightly, first) == utc("2026-10-26T01:30:00Z")


def test_end_at_stops_the_fires() -> None:
    bounded = spec(every_s=3600, end_at="2026-11-26T08:00:00+00:00")
    assert next_fire(bounded, NOW) == utc("2026-11-26T07:00:00Z")
    assert next_fire(bounded, utc("2026-11-26T08:00:00Z")) is None


def test_due_fires_gives_the_latest_and_how_many() -> None:
    every_10m = spec(every_s=600)
    assert due_fires(every_10m, NOW, NOW + timedelta(seconds=30)) == (None, 0)
    assert due_fires(every_10m, NOW, utc("2026-11-26T07:35:00Z")) == (
        utc("2026-11-26T07:30:00Z"),
        4,  # 07:00, 07:10, 07:20, 07:30
    )
    hourly_cron = spec(cron="0 * * * *")
    assert due_fires(hourly_cron, NOW, utc("2026-11-26T10:00:00Z")) == (
        utc("2026-11-26T10:00:00Z"),
        4,
    )


def test_jitter_is_deterministic_bounded_and_spread() -> None:
    jittered = spec(every_s=3600, jitter_s=300)
    fires = [utc("2026-11-26T07:00:00Z") + timedelta(hours=h) for h in range(50)]
    delays = [jitter(jittered, t) for t in fires]
    assert delays == [jitter(jittered, t) for t in fires]  # same inputs, same delay
    assert all(timedelta(0) <= d < timedelta(seconds=300) for d in delays)
    assert len(set(delays)) > 40
    other = jittered.model_copy(update={"name": "daily"})
    assert [jitter(other, t) for t in fires] != delays  # another schedule, other delays
    assert jitter(spec(every_s=3600), fires[0]) == timedelta(0)


def test_run_ids_are_the_schedule_and_the_utc_fire_time() -> None:
    assert run_id("weekly", utc("2026-11-26T07:00:00Z")) == "weekly-20261126T070000Z"
    berlin = datetime.fromisoformat("2026-11-26T08:00:00+01:00")
    assert run_id("weekly", berlin) == "weekly-20261126T070000Z"


@pytest.mark.parametrize(
    ("running", "buffer_taken", "overlap", "kind", "decision"),
    [
        (False, False, "skip", "scheduled", "start"),
        (True, False, "skip", "scheduled", "skip"),
        (True, False, "buffer-one", "scheduled", "buffer"),
        (True, True, "buffer-one", "scheduled", "skip"),
        (True, True, "buffer-one", "buffered", "buffer"),
        (False, True, "buffer-one", "buffered", "start"),
        (True, False, "cancel-previous", "trigger", "cancel-and-start"),
        (False, False, "cancel-previous", "scheduled", "start"),
    ],
    ids=[
        "idle-starts",
        "skip",
        "buffer-one-buffers",
        "buffer-full-skips",
        "buffered-keeps-waiting",
        "buffered-starts-when-free",
        "cancel-previous",
        "cancel-previous-idle",
    ],
)
def test_overlap_decisions(
    running: bool, buffer_taken: bool, overlap: Any, kind: Any, decision: str
) -> None:
    assert decide(overlap, previous_running=running, buffer_taken=buffer_taken, kind=kind) == (
        decision
    )


def make(**overrides: Any) -> ScheduleSpec:
    args: dict[str, Any] = {
        "name": "weekly",
        "run": RUN,
        "every": None,
        "cron": "0 7 * * MON",
        "tz": "UTC",
        "start_at": None,
        "end_at": None,
        "overlap": "skip",
        "catchup_window": "1h",
        "jitter": "",
        "min_interval_s": 60.0,
        "now": NOW,
    }
    args.update(overrides)
    return make_spec(**args)


def test_make_spec_reads_flags() -> None:
    made = make(every="6h", cron=None, tz="Europe/Berlin", start_at="2026-12-01T07:00", jitter="5m")
    assert made.every_s == 6 * 3600 and made.jitter_s == 300
    assert made.start_at == "2026-12-01T06:00:00+00:00"  # a local time in --tz
    assert made.buffer_poll_s == 60.0
    assert parse_duration("1h30m", "--every") == timedelta(minutes=90)
    assert smallest_gap(make(), NOW) == timedelta(days=7)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cron": "0 7 * * FUNDAY"}, "invalid cron expression '0 7 * * FUNDAY'"),
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": None, "every": "30s"}, "the minimum is 60s"),
        ({"cron": "* * * * * *"}, "the minimum is 60s"),
        ({"cron": None, "every": "soon"}, "--every: invalid duration 'soon'"),
        ({"cron": None}, "give exactly one of --every or --cron"),
        ({"every": "1h"}, "give exactly one of --every or --cron"),
        (
            {"start_at": "2027-01-02T00:00Z", "end_at": "2027-01-01T00:00Z"},
            "--end-at must be after --start-at",
        ),
        ({"start_at": "next tuesday"}, "--start-at: 'next tuesday' is not an ISO-8601"),
        ({"jitter": "8d"}, "--jitter 8d is not shorter than the time between two fires"),
        ({"name": "bad name"}, "invalid schedule name 'bad name'"),
        ({"name": "x" * 48}, "invalid schedule name"),
    ],
    ids=[
        "bad-cron-day",
        "bad-cron-minute",
        "unknown-zone",
        "interval-too-short",
        "cron-too-often",
        "bad-duration",
        "no-cadence",
        "two-cadences",
        "end-before-start",
        "bad-start",
        "jitter-too-long",
        "bad-name",
        "name-too-long",
    ],
)
def test_make_spec_refuses_bad_input_in_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        make(**overrides)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_lower_minimum_interval_is_a_setting() -> None:
    assert make(cron=None, every="2s", min_interval_s=1.0).every_s == 2.0


def test_next_fire_is_shown_in_the_schedules_zone_and_utc_or_why_there_is_none() -> None:
    def status(**fields: Any) -> ScheduleStatus:
        fields = {"next_fire": None, "paused": False, **fields}
        return ScheduleStatus(name="weekly", description="", wake_at=None, **fields)

    fire = "2026-11-27T07:00:00+00:00"
    assert format_next_fire(None, "UTC") == "not computed yet"
    assert format_next_fire(status(next_fire=fire, paused=True), "UTC") == "none (paused)"
    assert format_next_fire(status(), "Europe/Berlin") == "none (past its end time)"
    assert format_next_fire(status(next_fire=fire), "UTC") == "2026-11-27 07:00:00 UTC"
    assert (
        format_next_fire(status(next_fire=fire), "Europe/Berlin")
        == "2026-11-27 08:00:00 CET (2026-11-27 07:00:00 UTC)"
    )
