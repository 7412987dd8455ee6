"""Calendar arithmetic of schedules: pure functions of a spec and a moment, no clock.

The workflow calls these with `ctx.current_utc_datetime`, so every replay computes the
same fire times. Cron expressions are read by cronsim in the schedule's time zone
(zoneinfo with the `tzdata` package), which also decides what a 02:30 fire means on a
day that skips or repeats 02:30 (DST): cronsim follows Debian cron there. Intervals are
absolute durations, aligned to the Unix epoch (so `every 6h` fires at 00:00, 06:00, ...
UTC) or to `start_at` when one is given.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from cronsim import CronSim

if TYPE_CHECKING:
    from fte.schedule.contracts import ScheduleSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Counting missed cron fires stops here (a minutely cron down for weeks); intervals are
# counted exactly by arithmetic.
MAX_COUNTED_FIRES = 100_000


def parse_utc(text: str) -> datetime:
    """An ISO-8601 moment as an aware UTC datetime; a moment without offset is UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return as_utc(moment)


def as_utc(moment: datetime) -> datetime:
    """The engine's clock is UTC but naive; everything here is aware UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    return as_utc(moment).isoformat()


def run_id(schedule: str, fire_time: datetime) -> str:
    """The deterministic ID of the run a fire starts: `<schedule>-<UTC fire time>`."""
    return f"{schedule}-{as_utc(fire_time).strftime('%Y%m%dT%H%M%SZ')}"


def jitter(spec: ScheduleSpec, fire_time: datetime) -> timedelta:
    """A delay in [0, jitter) that depends only on the schedule's name and the fire time."""
    if spec.jitter_s <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{spec.name}|{iso(fire_time)}".encode()).digest()
    millis = int.from_bytes(digest[:8], "big") % int(spec.jitter_s * 1000)
    return timedelta(milliseconds=millis)


def _bounds(spec: ScheduleSpec) -> tuple[datetime | None, datetime | None]:
    start = parse_utc(spec.start_at) if spec.start_at else None
    end = parse_utc(spec.end_at) if spec.end_at else None
    return start, end


def _interval_after(spec: ScheduleSpec, after: datetime) -> datetime:
    assert spec.every_s is not None
    anchor = parse_utc(spec.start_at) if spec.start_at else EPOCH
    step = timedelta(seconds=spec.every_s)
    if after < anchor:
        return anchor
    k = math.floor((after - anchor) / step) + 1
    return anchor + k * step


def _cron_after(spec: ScheduleSpec, after: datetime) -> datetime:
    assert spec.cron is not None
    zone = ZoneInfo(spec.tz)
    # cronsim drops sub-second parts and yields times strictly after its start.
    local = next(CronSim(spec.cron, after.astimezone(zone)))
    return as_utc(local)


def next_fire(spec: ScheduleSpec, after: datetime) -> datetime | None:
    """The first nominal fire time strictly after `after`, or None once past `end_at`."""
    start, end = _bounds(spec)
    after = as_utc(after)
    if start is not None and after < start:
        # A fire exactly at start_at counts.
        after = start - timedelta(microseconds=1)
    fire = _interval_after(spec, after) if spec.every_s is not None else _cron_after(spec, after)
    if end is not None and fire > end:
        return None
    return fire


def due_fires(spec: ScheduleSpec, after: datetime, until: datetime) -> tuple[datetime | None, int]:
    """The latest nominal fire time in (after, until] and how many there are."""
    after, until = as_utc(after), as_utc(until)
    first = next_fire(spec, after)
    if first is None or first > until:
        return None, 0
    _, end = _bounds(spec)
    limit = until if end is None else min(until, end)
    if spec.every_s is not None:
        step = timedelta(seconds=spec.every_s)
        count = math.floor((limit - first) / step) + 1
        return first + (count - 1) * step, count
    latest, count = first, 1
    while count < MAX_COUNTED_FIRES:
        following = next_fire(spec, latest)
        if following is None or following > limit:
            break
        latest, count = following, count + 1
    return latest, count


def smallest_gap(spec: ScheduleSpec, around: datetime, samples: int = 50) -> timedelta:
    """The shortest time between two fires (the interval, or the closest cron fires seen)."""
    if spec.every_s is not None:
        return timedelta(seconds=spec.every_s)
    assert spec.cron is not None
    zone = ZoneInfo(spec.tz)
    it = CronSim(spec.cron, as_utc(around).astimezone(zone))
    previous = as_utc(next(it))
    gap = timedelta(days=366)
    for _ in range(samples):
        current = as_utc(next(it))
        gap = min(gap, current - previous)
        previous = current
    return gap
