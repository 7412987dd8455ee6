"""Pydantic contracts of a schedule: its spec, its durable state, control events, fires.

The schedule workflow's input is `ScheduleInput` (spec + state); every execution ends
with `continue_as_new` and the updated state, so the state is all the loop remembers and
the history of one execution stays a handful of events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, field_validator, model_validator

from fte.contracts import Contract, RunConfig
from fte.limits import Overlap as Overlap
from fte.schedule.timing import parse_utc

# Bounded lists kept in the state (and so in every continue_as_new input).
RECENT_FIRES = 20
SEEN_REQUESTS = 32


class ScheduleSpec(Contract):
    """When and what a schedule runs. Times are ISO-8601 with an offset (stored as UTC)."""

    name: str
    run: RunConfig = Field(description="The research run each fire starts (a template).")
    every_s: float | None = Field(default=None, gt=0, description="Fire every N seconds.")
    cron: str | None = Field(default=None, description="A cron expression (5 or 6 fields).")
    tz: str = Field(default="UTC", description="IANA time zone the cron expression is read in.")
    start_at: str | None = Field(default=None, description="No fire before this moment.")
    end_at: str | None = Field(default=None, description="No fire after this moment.")
    overlap: Overlap = "skip"
    catchup_window_s: float = Field(default=3600.0, ge=0)
    jitter_s: float = Field(default=0.0, ge=0)
    buffer_poll_s: float = Field(
        default=30.0, gt=0, description="How often a buffered fire checks the previous run."
    )
    created_at: str

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)"
            ) from None
        return value

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            CronSim(value, parse_utc("2000-01-01T00:00:00+00:00"))
        except (CronSimError, ValueError) as exc:
            raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @field_validator("start_at", "end_at", "created_at")
    @classmethod
    def _iso(cls, value: str | None) -> str | None:
        return None if value is None else parse_utc(value).isoformat()

    @model_validator(mode="after")
    def _one_cadence(self) -> ScheduleSpec:
        if (self.every_s is None) == (self.cron is None):
            raise ValueError("give exactly one of --every or --cron")
        if self.start_at and self.end_at and parse_utc(self.end_at) <= parse_utc(self.start_at):
            raise ValueError("--end-at must be after --start-at")
        return self

    def describe(self) -> str:
        if self.every_s is not None:
            return f"every {format_seconds(self.every_s)}"
        return f"cron '{self.cron}' ({self.tz})"


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"


FireKind = Literal["scheduled", "catch-up", "trigger", "buffered"]
FireOutcome = Literal["started", "skipped", "buffered", "missed", "paused", "failed"]


class FireRecord(Contract):
    """What became of one fire time."""

    fire_time: str
    run_id: str
    kind: FireKind
    outcome: FireOutcome
    detail: str = ""


class ScheduleState(Contract):
    """What the loop remembers between executions (passed on by `continue_as_new`)."""

    cursor: str = Field(description="Fire times up to here are handled (started or counted).")
    paused: bool = False
    pause_reason: str = ""
    buffered: str | None = Field(
        default=None, description="A fire time held until the previous run ends (buffer-one)."
    )
    last_run: str | None = Field(default=None, description="The latest run this schedule started.")
    last_completed: str | None = Field(
        default=None, description="The latest run known to have completed (compared against)."
    )
    fires: int = Field(default=0, description="Fire times handled, in any way.")
    started: int = 0
    skipped_overlap: int = 0
    skipped_missed: int = 0
    skipped_paused: int = 0
    failed: int = Field(default=0, description="Fires whose activity failed for good.")
    triggers: int = 0
    executions: int = Field(default=0, description="Executions so far (continue_as_new count).")
    recent: list[FireRecord] = Field(default_factory=list)
    seen_requests: list[str] = Field(default_factory=list)
    removed: bool = False

    def remember(self, record: FireRecord) -> None:
        self.recent = [*self.recent, record][-RECENT_FIRES:]

    def saw(self, request_id: str) -> None:
        self.seen_requests = [*self.seen_requests, request_id][-SEEN_REQUESTS:]


class ScheduleInput(Contract):
    spec: ScheduleSpec
    state: ScheduleState


# `wake` changes nothing: it only ends the execution's wait, so that the next execution
# sets its timer afresh (ScheduleClient.wake_overdue: a timer the engine lost).
ControlAction = Literal["pause", "resume", "trigger", "remove", "wake"]


class ScheduleControl(Contract):
    """Payload of the schedule's control event; `request_id` makes a repeated send harmless."""

    action: ControlAction
    request_id: str
    reason: str = ""


class ScheduleStatus(Contract):
    """The schedule workflow's custom status: what `fte schedule list/show` read."""

    name: str
    description: str
    cursor: str | None = Field(default=None, description="Fire times up to here are handled.")
    next_fire: str | None = Field(description="Nominal UTC time of the next fire, if any.")
    wake_at: str | None = Field(description="When the loop wakes next (jitter and polls in).")
    paused: bool
    pause_reason: str = ""
    buffered: str | None = None
    last_run: str | None = None
    last_completed: str | None = None
    fires: int = 0
    started: int = 0
    skipped_overlap: int = 0
    skipped_missed: int = 0
    skipped_paused: int = 0
    failed: int = 0
    triggers: int = 0
    executions: int = 0
    removed: bool = False
    recent: list[FireRecord] = Field(default_factory=list)
    seen_requests: list[str] = Field(default_factory=list)


class FireInput(Contract):
    """Input of the fire activity: start (or skip, buffer) the run for one fire time."""

    schedule: str
    run_id: str
    fire_time: str
    kind: FireKind
    overlap: Overlap
    previous: str | None = Field(description="The run this schedule started last, if any.")
    buffer_taken: bool = Field(description="A fire is already buffered (buffer-one).")
    candidates: list[str] = Field(
        description="Earlier runs of this schedule, newest first: the newest completed one "
        "is what the new run is compared with."
    )
    config: RunConfig
    execution: int = Field(
        default=0,
        description="The loop's execution that asks (echoed in the result, see FireResult).",
    )


class FireResult(Contract):
    outcome: Literal["started", "skipped", "buffered"]
    run_id: str
    previous_state: str | None = None
    compare_with: str | None = None
    cancelled_previous: bool = False
    already_existed: bool = Field(
        default=False, description="The run existed already: a retried fire, not a second run."
    )
    execution: int | None = Field(
        default=None, description="The loop execution that asked (None from older workers)."
    )

    def answers(self, asked: FireInput) -> bool:
        """Whether this is the answer to `asked`, not to a fire of an earlier execution.

        Dapr 1.18 can hand an earlier execution's activity result to this one: results
        carry the task's sequence number but not the execution (`continue_as_new`
        generation), and every execution numbers its tasks from 0. A redelivered result
        (an activity run again after a crash) then completes whatever task of the
        current execution has the same number.
        """
        return self.run_id == asked.run_id and self.execution in (None, asked.execution)


def format_next_fire(status: ScheduleStatus | None, tz: str) -> str:
    """A schedule's next fire as `fte schedule` and the web console show it: local time in
    the schedule's zone, then UTC (UTC alone for a UTC schedule), or why there is none."""
    if status is None:
        return "not computed yet"
    if status.paused:
        return "none (paused)"
    if status.next_fire is None:
        return "none (past its end time)"
    moment = datetime.fromisoformat(status.next_fire)
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if tz == "UTC":
        return utc
    local = moment.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"{local} ({utc})"
