"""What the console's pages show, read through the same clients the CLI uses.

Every function here returns plain data for a template; the templates escape all of it
(Jinja autoescape), so text from sources, models and people is never markup.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fte import artifacts, names
from fte.agents import analyst, fact_checker, writer
from fte.client import SETTLED_STATES, ResearchClient, Snapshot, UnknownTaskError
from fte.contracts import TERMINAL_STAGES, Gap, Progress, RoundReport, RunConfig, Spend
from fte.errors import FteError
from fte.evals.scorecard import Scorecard, bar_scale, compare
from fte.pricing import estimate_run_cost, format_cost
from fte.progress_view import elapsed
from fte.report import GAP_LABELS, budget_stop_sentence, round_summary
from fte.schedule.client import ScheduleClient, ScheduleView
from fte.schedule.contracts import format_next_fire

# The filters of the runs page: a label and the states each shows.
RUN_FILTERS: dict[str, frozenset[str] | None] = {
    "all": None,
    "active": None,  # anything not settled
    "awaiting_approval": frozenset({"awaiting_approval"}),
    "completed": frozenset({"completed"}),
    "failed": frozenset({"failed"}),
    "rejected": frozenset({"rejected"}),
    "cancelled": frozenset({"cancelled"}),
}
# Progress fields the run page shows in their own places; any other field (one a later
# version adds) is listed generically under "More progress".
_SHOWN_PROGRESS = frozenset(
    {
        "task_id",
        "query",
        "stage",
        "started_at",
        "updated_at",
        "sub_questions",
        "sources_found",
        "claims",
        "usage",
        "usage_by_agent",
        "models",
        "checkins",
        "reason",
        "depth",
        "round",
        "rounds",
        "spend",
    }
)


def cost_of(progress: Progress | None) -> str:
    if progress is None:
        return "-"
    total, _ = estimate_run_cost(progress.models, progress.usage_by_agent)
    return "$0" if total == 0 else format_cost(total)


def state_of(snap: Snapshot) -> str:
    return snap.end_state or (snap.progress.stage if snap.progress else "pending")


@dataclass(frozen=True)
class Moment:
    """A stored ISO timestamp: short in UTC for a table cell, in full for its title."""

    iso: str
    short: str


def moment(iso: str) -> Moment:
    """`2026-11-26 04:25` (UTC) for `2026-11-26T04:25:13+00:00`; text that is not ISO stays."""
    if not iso:
        return Moment("", "")
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        return Moment(iso, iso)
    return Moment(iso, _aware(parsed).astimezone(UTC).strftime("%Y-%m-%d %H:%M"))


def budget_cell(spend: Spend | None) -> tuple[list[str], str]:
    """The runs page's budget column, a line per limit set (`35.2k / 200k tokens`,
    `$0.01 / $0.50`), with `Spend.describe()` (the CLI's words) as the cell's title."""
    if spend is None or (spend.max_tokens is None and spend.budget_usd is None):
        return [], ""
    lines = []
    if spend.max_tokens is not None:
        lines.append(f"{_compact(spend.tokens)} / {_compact(spend.max_tokens)} tokens")
    if spend.budget_usd is not None:
        usd = "?" if spend.usd is None else _dollars(spend.usd)
        lines.append(f"{usd} / {_dollars(spend.budget_usd)}")
    if spend.stopped:
        lines.append("stopped by the budget")
    return lines, spend.describe()


def _dollars(usd: float) -> str:
    return f"${usd:.2f}" if usd == 0 or usd >= 0.01 else f"${usd:.2g}"


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.3g}M"
    if n >= 1_000:
        return f"{n / 1_000:.3g}k"
    return str(n)


@dataclass(frozen=True)
class RunRow:
    task_id: str
    query: str
    state: str
    stage: str
    progress: str
    tokens: int
    cost: str
    started: Moment
    finished: Moment
    schedule: str | None
    settled: bool
    budget: list[str] = field(default_factory=list)
    budget_title: str = ""


def run_rows(client: ResearchClient, status: str = "all") -> list[RunRow]:
    """The runs page: newest first, filtered by `status` (a key of RUN_FILTERS)."""
    rows = []
    for task_id, meta in client.store.runs().items():
        try:
            snap: Snapshot | None = client.snapshot(task_id)
        except UnknownTaskError:
            snap = None
        state = state_of(snap) if snap is not None else "missing"
        progress = snap.progress if snap is not None else None
        if status == "active" and state in SETTLED_STATES:
            continue
        wanted = RUN_FILTERS.get(status)
        if wanted is not None and state not in wanted:
            continue
        done = sum(1 for q in progress.sub_questions if q.state == "done") if progress else 0
        total = len(progress.sub_questions) if progress else 0
        budget, budget_title = budget_cell(progress.spend if progress else None)
        rows.append(
            RunRow(
                task_id=task_id,
                query=str(meta.get("query", "")),
                state=state,
                stage=progress.stage if progress else "-",
                progress=f"{done}/{total} sub-questions" if total else "-",
                tokens=progress.usage.total_tokens if progress else 0,
                cost=cost_of(progress),
                started=moment(str(meta.get("created_at", ""))),
                finished=moment(
                    progress.updated_at if progress and state in SETTLED_STATES else ""
                ),
                schedule=meta.get("schedule"),
                settled=state in SETTLED_STATES,
                budget=budget,
                budget_title=budget_title,
            )
        )
    return sorted(rows, key=lambda r: r.started.iso, reverse=True)


@dataclass(frozen=True)
class TimelineEntry:
    """One workflow instance of the run as the engine records it."""

    instance_id: str
    role: str
    status: str
    created_at: str
    updated_at: str
    seconds: float = 0.0
    # Where its bar starts and how long it is, in % of the run's span (created to last update).
    offset_pct: float = 0.0
    width_pct: float = 0.0


@dataclass(frozen=True)
class GapView:
    """Something a round looked for, or that remains, in the reports' words."""

    id: str
    label: str
    question: str
    about: str  # the sub-question or claim it comes from, if any


@dataclass(frozen=True)
class RoundView:
    number: int
    state: str
    summary: str
    looked_for: list[GapView]
    sources_found: list[str]
    claims_added: list[str]
    under_way: bool


@dataclass(frozen=True)
class SpendView:
    """Spend against the budget; a limit not set reads "no limit"."""

    summary: str
    tokens: str
    usd: str
    max_tokens: str
    budget_usd: str
    limited: bool
    stopped: str  # the budget's note, as a sentence, when it ended the research


def gap_view(gap: Gap) -> GapView:
    about = (
        f"claim {gap.claim_id}"
        if gap.claim_id
        else f"sub-question {gap.sub_question_id}"
        if gap.sub_question_id
        else ""
    )
    return GapView(gap.id, GAP_LABELS[gap.kind], gap.question, about)


def round_views(progress: Progress | None, rounds: list[RoundReport]) -> list[RoundView]:
    """Each round, marking the one under way (the progress's `round`, not yet done)."""
    running = progress is not None and progress.stage not in TERMINAL_STAGES
    return [
        RoundView(
            number=r.round,
            state=r.state,
            summary=round_summary(r),
            looked_for=[gap_view(g) for g in r.looked_for],
            sources_found=list(r.sources_found),
            claims_added=list(r.claims_added),
            under_way=running
            and progress is not None
            and progress.round == r.round
            and r.state != "done",
        )
        for r in rounds
    ]


def spend_view(spend: Spend | None) -> SpendView | None:
    if spend is None:
        return None
    return SpendView(
        summary=spend.describe(),
        tokens=f"{spend.tokens:,}",
        usd="unknown (a model without a price)" if spend.usd is None else f"${spend.usd:,.4f}",
        max_tokens="no limit" if spend.max_tokens is None else f"{spend.max_tokens:,} tokens",
        budget_usd="no limit" if spend.budget_usd is None else f"${spend.budget_usd:,.4f}",
        limited=spend.max_tokens is not None or spend.budget_usd is not None,
        stopped=budget_stop_sentence(spend.stopped) if spend.stopped else "",
    )


@dataclass
class RunPage:
    task_id: str
    snap: Snapshot
    state: str
    config: RunConfig | None
    plan: list[dict[str, Any]]
    plan_rationale: str
    sources: list[dict[str, Any]]
    claims: list[dict[str, Any]]
    timeline: list[TimelineEntry]
    stage_seconds: dict[str, float]
    notices: list[dict[str, Any]]
    extra_progress: dict[str, str]
    has_report: bool
    cost: str
    elapsed: str
    usage_by_agent: list[tuple[str, int, int]] = field(default_factory=list)
    depth: int = 0
    round_now: int = 0
    rounds: list[RoundView] = field(default_factory=list)
    remaining_gaps: list[GapView] | None = None  # None: not known (the run has no report)
    spend: SpendView | None = None

    @property
    def round_under_way(self) -> RoundView | None:
        return next((r for r in self.rounds if r.under_way), None)

    @property
    def awaiting_approval(self) -> bool:
        return self.state == "awaiting_approval"

    @property
    def finished(self) -> bool:
        return self.snap.finished


def _when(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return _aware(moment).astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]


def timeline(
    client: ResearchClient, task_id: str, sub_question_ids: list[str]
) -> list[TimelineEntry]:
    """The coordinator and each child workflow it may start, in pipeline order, as stored."""
    roles = [
        ("", "coordinator"),
        *((f"sources.{q}", f"source finder {q}") for q in sub_question_ids),
        (analyst.AGENT.name, "analyst"),
        (fact_checker.AGENT.name, "fact checker"),
        (writer.AGENT.name, "writer"),
    ]
    found = []
    for suffix, role in roles:
        instance = names.child_id(task_id, suffix) if suffix else task_id
        state = client.workflow_state(instance)
        if state is not None:
            found.append((instance, role, state))
    if not found:
        return []
    start = min(_aware(state.created_at) for _, _, state in found)
    end = max(_aware(state.last_updated_at) for _, _, state in found)
    span = max((end - start).total_seconds(), 1e-3)
    entries = []
    for instance, role, state in found:
        began, last = _aware(state.created_at), _aware(state.last_updated_at)
        seconds = max(0.0, (last - began).total_seconds())
        entries.append(
            TimelineEntry(
                instance_id=instance,
                role=role,
                status=state.runtime_status.name.lower(),
                created_at=_when(began),
                updated_at=_when(last),
                seconds=seconds,
                offset_pct=round(100 * (began - start).total_seconds() / span, 2),
                width_pct=round(max(0.5, 100 * seconds / span), 2),
            )
        )
    return entries


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def run_page(client: ResearchClient, task_id: str) -> RunPage:
    snap = client.snapshot(task_id)
    state = state_of(snap)
    engine = client.workflow_state(task_id)
    config = None
    if engine is not None and engine.serialized_input:
        try:
            config = RunConfig.model_validate_json(engine.serialized_input)
        except ValueError:
            config = None  # an older run's input: the page shows what the progress has
    report: dict[str, Any] | None = None
    if state == "completed":
        try:
            report = client.report(task_id)
        except FteError:
            report = None
    plan = client.store.get(task_id, artifacts.PLAN) or {}
    sub_questions: list[dict[str, Any]] = []
    states = {q.id: q for q in snap.progress.sub_questions} if snap.progress else {}
    for q in plan.get("sub_questions", []):
        live = states.get(q["id"])
        sub_questions.append(
            {
                "id": q["id"],
                "text": q["text"],
                "state": live.state if live else "-",
                "sources": live.sources if live else 0,
            }
        )
    if not sub_questions and snap.progress:
        sub_questions = [q.model_dump() for q in snap.progress.sub_questions]
    stored_sources = client.store.get(task_id, artifacts.SOURCES) or {}
    sources = list(stored_sources.get("sources", []))
    if report is not None and not sources:
        sources = list(report.get("sources", []))
    claims: list[dict[str, Any]]
    if report is not None:
        claims = list(report.get("claims", []))
    else:
        claims = list((client.store.get(task_id, artifacts.CLAIMS) or {}).get("checked", []))
    extra: dict[str, str] = {}
    usage_by_agent: list[tuple[str, int, int]] = []
    # Rounds and spend live in the progress; a report (a completed run) also keeps them,
    # with the gaps that remained, for a run whose progress an older version wrote.
    rounds = list(snap.progress.rounds) if snap.progress else []
    if not rounds and report is not None:
        rounds = [RoundReport.model_validate(r) for r in report.get("rounds", [])]
    spend = snap.progress.spend if snap.progress else None
    if spend is None and report is not None and report.get("spend"):
        spend = Spend.model_validate(report["spend"])
    remaining = (
        [gap_view(Gap.model_validate(g)) for g in report.get("remaining_gaps", [])]
        if report is not None
        else None
    )
    depth = snap.progress.depth if snap.progress else (config.depth if config else 0)
    if snap.progress is not None:
        dumped = snap.progress.model_dump(mode="json")
        extra = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in dumped.items()
            if key not in _SHOWN_PROGRESS
        }
        usage_by_agent = [
            (agent, u.prompt_tokens, u.completion_tokens)
            for agent, u in snap.progress.usage_by_agent.items()
        ]
    return RunPage(
        task_id=task_id,
        snap=snap,
        state=state,
        config=config,
        plan=sub_questions,
        plan_rationale=str(plan.get("rationale", "")),
        sources=sources,
        claims=claims,
        timeline=timeline(client, task_id, [q["id"] for q in sub_questions]),
        stage_seconds=dict(report.get("stage_seconds", {})) if report else {},
        notices=client.store.notices(task_id),
        extra_progress=extra,
        has_report=report is not None,
        cost=cost_of(snap.progress),
        elapsed=elapsed(snap.progress) if snap.progress else "",
        usage_by_agent=usage_by_agent,
        depth=depth,
        round_now=snap.progress.round if snap.progress else 0,
        rounds=round_views(snap.progress, rounds),
        remaining_gaps=remaining,
        spend=spend_view(spend),
    )


# -- schedules -------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleRow:
    name: str
    cadence: str
    query: str
    paused: bool
    pause_reason: str
    next_fire: str
    last_run: str
    last_run_state: str
    last_change: str
    fires: str


def _last_change(client: ResearchClient, schedules: ScheduleClient, name: str) -> str:
    for run in schedules.runs(name):
        if run.state != "completed":
            continue
        try:
            changes = client.report(run.task_id).get("changes")
        except FteError:
            continue
        return str(changes["summary"]) if changes else "first completed run: nothing to compare"
    return "no completed run yet"


def schedule_rows(client: ResearchClient) -> list[ScheduleRow]:
    schedules = ScheduleClient(client)
    rows = []
    for view in schedules.all():
        rows.append(_schedule_row(client, schedules, view))
    return rows


def _schedule_row(
    client: ResearchClient, schedules: ScheduleClient, view: ScheduleView
) -> ScheduleRow:
    st = view.status
    last_state = "-"
    if st is not None and st.last_run:
        try:
            last_state = state_of(client.snapshot(st.last_run))
        except FteError:
            last_state = "missing"
    return ScheduleRow(
        name=view.name,
        cadence=view.spec.describe(),
        query=view.spec.run.query,
        paused=bool(st and st.paused),
        pause_reason=(st.pause_reason or "") if st else "",
        next_fire=format_next_fire(st, view.spec.tz),
        last_run=(st.last_run or "-") if st else "-",
        last_run_state=last_state,
        last_change=_last_change(client, schedules, view.name),
        fires=(
            f"{st.fires} fires: {st.started} started, {st.skipped_overlap} skipped (overlap), "
            f"{st.skipped_missed} missed, {st.triggers} triggered"
            if st
            else "-"
        ),
    )


# -- evals -----------------------------------------------------------------------


@dataclass(frozen=True)
class MetricBar:
    """One metric of the scorecard with its baseline, scaled for a bar chart."""

    suite: str
    name: str
    description: str
    unit: str
    value: str
    baseline: str
    now_width: float
    base_width: float
    worse: bool


@dataclass
class EvalPage:
    scorecard_path: str
    baseline_path: str
    found: bool
    problem: str = ""
    bars: list[MetricBar] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    chart_height: int = 0


BAR_MAX = 240.0  # px of a full bar in the chart
ROW_HEIGHT = 34  # px per metric in the chart


def _fmt(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "share":
        return f"{value:.3f}"
    if unit == "usd":
        return f"${value:.4f}"
    if unit == "score":
        return f"{value:.2f}"
    return f"{value:,.0f}"


def eval_page(scorecard_path: Path, baseline_path: Path) -> EvalPage:
    page = EvalPage(str(scorecard_path), str(baseline_path), found=False)
    try:
        card = Scorecard.model_validate_json(scorecard_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        page.problem = f"no scorecard at {scorecard_path}: `fte eval` writes one"
        return page
    except (OSError, ValueError) as exc:
        page.problem = f"cannot read {scorecard_path}: {type(exc).__name__}"
        return page
    baseline: Scorecard | None
    try:
        baseline = Scorecard.model_validate_json(baseline_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        baseline = None
        page.problem = f"no readable baseline at {baseline_path}; showing the scorecard alone"
    page.found = True
    old = baseline.metrics() if baseline else {}
    comparison = compare(card, baseline) if baseline else None
    worse = {change.metric for change in comparison.regressions} if comparison else set()
    page.regressions = sorted(worse)
    for suite in card.suites:
        for m in suite.metrics:
            before = old.get(m.name)
            b = before.value if before else None
            scale = bar_scale(m, b)
            page.bars.append(
                MetricBar(
                    suite=suite.name,
                    name=m.name,
                    description=m.description,
                    unit=m.unit,
                    value=_fmt(m.value, m.unit),
                    baseline=_fmt(b, m.unit) if before else "-",
                    now_width=round(min(1.0, abs(m.value or 0) / scale) * BAR_MAX, 1),
                    base_width=round(min(1.0, abs(b or 0) / scale) * BAR_MAX, 1),
                    worse=m.name in worse,
                )
            )
    page.chart_height = ROW_HEIGHT * len(page.bars)
    return page
