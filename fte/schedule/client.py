"""Client side of schedules: validate and add, list and show, control, remove, diff.

A schedule is one workflow instance (`schedule:<name>`) plus an entry in the schedules
index of the state store (the SDK cannot list workflow instances). Control requests are
external events carrying a fresh request ID; the loop records the IDs it has applied in
its custom status, which is how a client knows (and a test observes) that a request took
effect, and why sending one twice changes nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from pydantic import ValidationError

from fte import artifacts, names
from fte.changes import Changes, ReportFacts, compare
from fte.client import ResearchClient, RunSummary, TaskStateError
from fte.contracts import RunConfig
from fte.errors import FteError, UsageError
from fte.limits import MAX_SCHEDULE_NAME
from fte.research import TASK_ID
from fte.schedule.contracts import (
    ControlAction,
    Overlap,
    ScheduleControl,
    ScheduleInput,
    ScheduleSpec,
    ScheduleState,
    ScheduleStatus,
)
from fte.schedule.timing import as_utc, iso, smallest_gap

log = structlog.get_logger(__name__)

MAX_NAME = MAX_SCHEDULE_NAME
# How late past its wake-up time a schedule is before a worker wakes it (wake_overdue):
# far more than a timer is ever late, and more than a fire takes.
WAKE_GRACE = timedelta(seconds=30)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class UnknownScheduleError(FteError):
    exit_code = 4


class ScheduleExistsError(UsageError):
    """A schedule of that name exists already (remove it first)."""


def parse_duration(text: str, option: str) -> timedelta:
    """`90s`, `30m`, `6h`, `1d`, or a sum such as `1h30m`."""
    compact = text.strip().replace(" ", "")
    if not compact or _DURATION.sub("", compact):
        raise UsageError(f"{option}: invalid duration {text!r}; use e.g. 90s, 30m, 6h, 1d, 1h30m")
    return timedelta(seconds=sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact)))


def validate_name(name: str) -> str:
    if not TASK_ID.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageError(
            f"invalid schedule name {name!r}: use 1-{MAX_NAME} letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def _moment(text: str | None, option: str, zone: str) -> str | None:
    """An ISO-8601 moment; one without an offset is read in the schedule's time zone."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option}: {text!r} is not an ISO-8601 date/time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return iso(moment)


def make_spec(
    *,
    name: str,
    run: RunConfig,
    every: str | None,
    cron: str | None,
    tz: str,
    start_at: str | None,
    end_at: str | None,
    overlap: Overlap,
    catchup_window: str,
    jitter: str,
    min_interval_s: float,
    now: datetime | None = None,
) -> ScheduleSpec:
    """A validated spec, or a one-line `UsageError` saying what is wrong."""
    validate_name(name)
    created = as_utc(now or datetime.now(UTC))
    every_s = parse_duration(every, "--every").total_seconds() if every is not None else None
    try:
        ZoneInfo(tz)
    except Exception:
        raise UsageError(
            f"--tz: unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)"
        ) from None
    try:
        spec = ScheduleSpec(
            name=name,
            run=run,
            every_s=every_s,
            cron=cron,
            tz=tz,
            start_at=_moment(start_at, "--start-at", tz),
            end_at=_moment(end_at, "--end-at", tz),
            overlap=overlap,
            catchup_window_s=parse_duration(catchup_window, "--catchup-window").total_seconds(),
            jitter_s=parse_duration(jitter, "--jitter").total_seconds() if jitter else 0.0,
            created_at=iso(created),
        )
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise UsageError(message) from None
    gap = smallest_gap(spec, created)
    if gap.total_seconds() < min_interval_s:
        raise UsageError(
            f"{spec.describe()} fires every {gap.total_seconds():g}s at the closest; the "
            f"minimum is {min_interval_s:g}s (setting schedule_min_interval_s)"
        )
    if spec.jitter_s >= gap.total_seconds():
        raise UsageError(
            f"--jitter {jitter} is not shorter than the time between two fires ({gap})"
        )
    poll = min(60.0, max(1.0, gap.total_seconds() / 10))
    return spec.model_copy(update={"buffer_poll_s": poll})


@dataclass(frozen=True)
class ScheduleView:
    """A schedule as a client sees it: its spec, the loop's status and the engine's."""

    name: str
    spec: ScheduleSpec
    status: ScheduleStatus | None
    runtime_status: str
    removed: bool = False


def _decode_status(raw: str | None) -> ScheduleStatus | None:
    if not raw:
        return None
    value: Any = json.loads(raw)
    if isinstance(value, str):  # custom status arrives JSON-encoded once more
        value = json.loads(value)
    return ScheduleStatus.model_validate(value)


class ScheduleClient:
    def __init__(self, research: ResearchClient) -> None:
        self.research = research
        self.store = research.store

    # -- adding and reading ------------------------------------------------------

    def add(self, spec: ScheduleSpec) -> None:
        entry = self.store.schedules().get(spec.name)
        if entry is not None and not entry.get("removed_at"):
            raise ScheduleExistsError(
                f"a schedule named {spec.name!r} exists already; "
                f"remove it first (fte schedule remove {spec.name})"
            )
        instance = names.schedule_instance(spec.name)
        if self.research.workflow_state(instance) is not None:
            self.research.workflows.purge_workflow(instance)  # the removed one's history

        def record(index: dict[str, Any]) -> None:
            index["schedules"][spec.name] = {
                "instance_id": instance,
                "created_at": spec.created_at,
                "description": spec.describe(),
                "query": spec.run.query,
            }

        self.store.update_index(record, key=artifacts.SCHEDULES_KEY)
        first = ScheduleInput(spec=spec, state=ScheduleState(cursor=spec.created_at))
        self.research.workflows.schedule_new_workflow(
            names.SCHEDULE, input=first.model_dump(mode="json"), instance_id=instance
        )

    def get(self, name: str) -> ScheduleView:
        entry = self.store.schedules().get(name)
        if entry is None:
            raise UnknownScheduleError(f"no schedule named {name!r} (see fte schedule list)")
        state = self.research.workflow_state(names.schedule_instance(name))
        if state is None or not state.serialized_input:
            if entry.get("removed_at"):
                raise UnknownScheduleError(f"schedule {name!r} was removed")
            raise UnknownScheduleError(f"schedule {name!r} has no workflow (purged?)")
        spec = ScheduleInput.model_validate_json(state.serialized_input).spec
        return ScheduleView(
            name=name,
            spec=spec,
            status=_decode_status(state.serialized_custom_status),
            runtime_status=state.runtime_status.name,
            removed=bool(entry.get("removed_at")),
        )

    def all(self) -> list[ScheduleView]:
        views = []
        for name, entry in sorted(self.store.schedules().items()):
            if entry.get("removed_at"):
                continue
            try:
                views.append(self.get(name))
            except UnknownScheduleError:
                continue
        return views

    def runs(self, name: str) -> list[RunSummary]:
        """The runs this schedule started, newest first."""
        return [r for r in self.research.runs() if r.schedule == name]

    # -- control -------------------------------------------------------------------

    def control(self, name: str, action: ControlAction, reason: str = "") -> str:
        """Send pause/resume/trigger/remove; returns the request ID the loop will record."""
        view = self.get(name)
        if view.runtime_status not in ("RUNNING", "PENDING", "SUSPENDED"):
            raise TaskStateError(
                f"schedule {name!r} is not running ({view.runtime_status.lower()})"
            )
        request_id = uuid.uuid4().hex
        self.research.workflows.raise_workflow_event(
            names.schedule_instance(name),
            names.SCHEDULE_CONTROL,
            data=ScheduleControl(action=action, request_id=request_id, reason=reason).model_dump(
                mode="json"
            ),
        )
        return request_id

    def wake_overdue(self, now: datetime, grace: timedelta = WAKE_GRACE) -> list[str]:
        """Wake each running schedule whose wake-up time passed `grace` ago; return them.

        A schedule waits on a durable timer. daprd 1.18.2 was seen to lose one when a
        worker was killed (tests/cli/test_schedule_kill.py), and with it the schedule
        stopped for good. A `wake` event ends the wait; the next execution sets its timer
        afresh and makes up the fires it missed under the usual catch-up rules. Waking a
        schedule that is merely busy (its fire still running) costs one execution.
        """
        woken = []
        for view in self.all():
            status = view.status
            if view.runtime_status != "RUNNING" or status is None or status.wake_at is None:
                continue
            wake_at = datetime.fromisoformat(status.wake_at)
            if now - wake_at < grace:
                continue
            try:
                self.control(view.name, "wake", f"its timer for {status.wake_at} did not fire")
            except TaskStateError:
                continue  # it ended meanwhile
            log.warning("schedule overdue; waking it", schedule=view.name, wake_at=status.wake_at)
            woken.append(view.name)
        return woken

    def wait_started(self, name: str, *, timeout_s: float = 60.0) -> ScheduleView:
        """Wait until the loop's first execution has published its status."""
        deadline = time.monotonic() + timeout_s
        while (view := self.get(name)).status is None:
            if time.monotonic() > deadline:
                raise TaskStateError(
                    f"schedule {name!r} did not start within {timeout_s:g}s; "
                    "is a worker serving it (fte serve)?"
                )
            time.sleep(0.1)
        return view

    def wait_applied(self, name: str, request_id: str, *, timeout_s: float = 60.0) -> ScheduleView:
        """Wait until the loop has applied `request_id` (or ended, for a removal)."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = self.get(name)
            if view.status is not None and (
                request_id in view.status.seen_requests or view.status.removed
            ):
                return view
            if time.monotonic() > deadline:
                raise TaskStateError(
                    f"schedule {name!r} did not apply the request within {timeout_s:g}s; "
                    "is a worker serving it (fte serve)?"
                )
            time.sleep(0.1)

    def remove(self, name: str, *, timeout_s: float = 60.0) -> bool:
        """End the schedule's loop, delete its history, keep its runs; False if already gone."""
        entry = self.store.schedules().get(name)
        if entry is None:
            raise UnknownScheduleError(f"no schedule named {name!r} (see fte schedule list)")
        if entry.get("removed_at"):
            return False
        instance = names.schedule_instance(name)
        state = self.research.workflow_state(instance)
        if state is not None and state.runtime_status.name in ("RUNNING", "PENDING", "SUSPENDED"):
            request_id = self.control(name, "remove")
            self.wait_applied(name, request_id, timeout_s=timeout_s)
            deadline = time.monotonic() + timeout_s
            while (current := self.research.workflow_state(instance)) is not None and (
                current.runtime_status.name in ("RUNNING", "PENDING")
            ):
                if time.monotonic() > deadline:
                    self.research.workflows.terminate_workflow(instance)
                    break
                time.sleep(0.1)
        if self.research.workflow_state(instance) is not None:
            self.research.workflows.purge_workflow(instance)
        removed_at = iso(datetime.now(UTC))

        def mark(index: dict[str, Any]) -> None:
            if name in index["schedules"]:
                index["schedules"][name]["removed_at"] = removed_at

        self.store.update_index(mark, key=artifacts.SCHEDULES_KEY)
        return True

    # -- what changed -----------------------------------------------------------

    def diff(self, name: str, run_a: str | None = None, run_b: str | None = None) -> Changes:
        """What run_b found that run_a did not (default: the schedule's last two completed)."""
        if (run_a is None) != (run_b is None):
            raise UsageError("give two run IDs, or none for the last two completed runs")
        if name not in self.store.schedules():
            raise UnknownScheduleError(f"no schedule named {name!r} (see fte schedule list)")
        if run_a is None or run_b is None:
            completed = [r.task_id for r in self.runs(name) if r.state == "completed"]
            if len(completed) < 2:
                raise TaskStateError(
                    f"schedule {name!r} has {len(completed)} completed run(s); a diff needs two"
                )
            run_b, run_a = completed[0], completed[1]
        before = self.research.report(run_a)
        after = self.research.report(run_b)
        return compare(ReportFacts.of(before), ReportFacts.of(after))
