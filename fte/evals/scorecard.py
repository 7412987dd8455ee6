"""The scorecard: what a run of the suites measured, how it compares with a baseline, and its views.

A metric is a named number with a direction (higher or lower is better), a tolerance and
whether the CI gate looks at it. Each suite also keeps its metrics per case, under the same
names, so a regression can name the cases that moved. Wall-clock times live apart in
`timings`: they differ between two runs of the same code, so they are shown but never
compared, and the rest of a scorecard is identical from one offline run to the next.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from fte.contracts import Contract

FORMAT: Literal["fte-scorecard/1"] = "fte-scorecard/1"
Unit = Literal["share", "count", "tokens", "usd", "score"]

# The stated tolerances of the gate. The offline suites are deterministic, so these only
# absorb float rounding: a share may drop by less than one case in a hundred, a count not at all.
SHARE_TOLERANCE = 0.01
COUNT_TOLERANCE = 0.0


class Metric(Contract):
    name: str = Field(description="Says what it is: citation_validity, retrieval_hit_at_8, ...")
    value: float | None = Field(description="None when the suite could not measure it.")
    unit: Unit = "share"
    better: Literal["higher", "lower"] = "higher"
    gated: bool = Field(default=True, description="Whether the CI gate compares it.")
    tolerance: float = SHARE_TOLERANCE
    description: str = ""


class Case(Contract):
    """One question, fault or script: its own values of the suite's metrics."""

    id: str
    values: dict[str, float] = Field(default_factory=dict)
    note: str = ""


class SuiteResult(Contract):
    name: str
    description: str
    metrics: list[Metric] = Field(default_factory=list)
    cases: list[Case] = Field(default_factory=list)
    skipped: str | None = Field(default=None, description="Why the suite did not run.")


class Scorecard(Contract):
    format: Literal["fte-scorecard/1"] = FORMAT
    suites: list[SuiteResult] = Field(default_factory=list)
    timings: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Wall-clock seconds per suite and stage: shown, never compared.",
    )

    def suite(self, name: str) -> SuiteResult | None:
        return next((s for s in self.suites if s.name == name), None)

    def metrics(self) -> dict[str, Metric]:
        return {m.name: m for s in self.suites for m in s.metrics}

    def comparable(self) -> str:
        """Canonical JSON of everything but the timings: equal for two equal runs."""
        return json.dumps(self.model_dump(mode="json", exclude={"timings"}), sort_keys=True)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n"


# -- comparison with a baseline ---------------------------------------------------------


@dataclass(frozen=True)
class Moved:
    case: str
    before: float | None
    after: float | None


@dataclass(frozen=True)
class Change:
    metric: str
    before: float | None
    after: float | None
    worse: bool
    regression: bool  # worse beyond the tolerance, on a gated metric
    tolerance: float
    moved: list[Moved] = field(default_factory=list)

    def describe(self) -> str:
        line = f"{self.metric}: {_fmt(self.before)} -> {_fmt(self.after)}"
        if self.regression:
            line += f" (worse by more than the tolerance {self.tolerance:g})"
        if self.moved:
            shown = ", ".join(
                f"{m.case} ({_fmt(m.before)} -> {_fmt(m.after)})" for m in self.moved[:10]
            )
            more = len(self.moved) - 10
            line += f"; cases that moved: {shown}" + (f" and {more} more" if more > 0 else "")
        return line


@dataclass(frozen=True)
class Comparison:
    changes: list[Change]

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regression]

    def before(self, metric: str) -> float | None:
        change = next((c for c in self.changes if c.metric == metric), None)
        return change.before if change else None


def compare(current: Scorecard, baseline: Scorecard) -> Comparison:
    """Every metric whose value differs from the baseline's, for the suites both ran."""
    changes: list[Change] = []
    for suite in current.suites:
        old_suite = baseline.suite(suite.name)
        if old_suite is None or old_suite.skipped or suite.skipped:
            continue
        now = {m.name: m for m in suite.metrics}
        for old in old_suite.metrics:
            new = now.get(old.name)
            after = new.value if new else None
            if after == old.value:
                continue
            worse = _worse(old, after)
            beyond = worse and (
                after is None or old.value is None or abs(after - old.value) > old.tolerance
            )
            changes.append(
                Change(
                    metric=old.name,
                    before=old.value,
                    after=after,
                    worse=worse,
                    regression=beyond and old.gated,
                    tolerance=old.tolerance,
                    moved=_moved(old, suite.cases, old_suite.cases),
                )
            )
    return Comparison(changes)


def _worse(old: Metric, after: float | None) -> bool:
    if old.value is None:
        return False
    if after is None:
        return True
    return after < old.value if old.better == "higher" else after > old.value


def _moved(metric: Metric, now: Iterable[Case], before: Iterable[Case]) -> list[Moved]:
    """The cases whose own value of `metric` got worse (or appeared or vanished)."""
    old = {c.id: c.values.get(metric.name) for c in before}
    new = {c.id: c.values.get(metric.name) for c in now}
    moved = []
    for case in sorted(old.keys() | new.keys()):
        a, b = old.get(case), new.get(case)
        if a == b or (a is None and b is None):
            continue
        if a is not None and b is not None:
            worse = b < a if metric.better == "higher" else b > a
            if not worse:
                continue
        moved.append(Moved(case, a, b))
    return moved


# -- views -------------------------------------------------------------------------------


def _fmt(value: float | None, unit: Unit = "share") -> str:
    if value is None:
        return "n/a"
    if unit == "usd":
        return f"${value:.4f}"
    if unit in ("count", "tokens"):
        return f"{value:,.0f}"
    if unit == "score":
        return f"{value:.1f}"
    return f"{value:.3f}"


def _rows(card: Scorecard, comparison: Comparison | None) -> list[tuple[str, str, str, str]]:
    rows = []
    for suite in card.suites:
        if suite.skipped:
            rows.append((suite.name, "skipped", "", "(why: scorecard.md)"))
            continue
        for m in suite.metrics:
            before = comparison.before(m.name) if comparison else None
            baseline = (
                ""
                if comparison is None
                else _fmt(before if before is not None else m.value, m.unit)
            )
            flag = ""
            if comparison and any(c.metric == m.name and c.regression for c in comparison.changes):
                flag = "REGRESSION"
            elif comparison and any(c.metric == m.name for c in comparison.changes):
                flag = "changed"
            rows.append((m.name, _fmt(m.value, m.unit), baseline, flag))
    return rows


def text_table(card: Scorecard, comparison: Comparison | None = None) -> str:
    """The scorecard as a fixed-width table for a terminal or a CI log."""
    header = ("metric", "value", "baseline" if comparison else "", "")
    rows = [header, *_rows(card, comparison)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


def markdown(card: Scorecard, comparison: Comparison | None = None) -> str:
    lines = ["# Evaluation scorecard", ""]
    for suite in card.suites:
        lines += [f"## {suite.name}", "", suite.description, ""]
        if suite.skipped:
            lines += [f"Skipped: {suite.skipped}", ""]
            continue
        lines += ["| metric | value | gated | meaning |", "| --- | --- | --- | --- |"]
        for m in suite.metrics:
            gate = f"yes (±{m.tolerance:g}, {m.better} is better)" if m.gated else "no"
            lines.append(f"| `{m.name}` | {_fmt(m.value, m.unit)} | {gate} | {m.description} |")
        lines.append("")
        noted = [c for c in suite.cases if c.note]
        if noted:
            lines += ["Cases with notes:", ""]
            lines += [f"- `{c.id}`: {c.note}" for c in noted]
            lines.append("")
    if card.timings:
        lines += ["## Wall time (seconds, not compared)", ""]
        for suite_name, timings in card.timings.items():
            parts = ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
            lines.append(f"- {suite_name}: {parts}")
        lines.append("")
    if comparison is not None:
        lines += ["## Compared with the baseline", ""]
        if not comparison.changes:
            lines.append("Identical to the baseline.")
        for change in comparison.changes:
            mark = "**regression**" if change.regression else "changed"
            lines.append(f"- {mark}: {change.describe()}")
        lines.append("")
    return "\n".join(lines)


def html_chart(card: Scorecard, baseline: Scorecard | None) -> str:
    """A self-contained HTML page: one pair of bars (baseline, this run) per metric."""
    old = baseline.metrics() if baseline else {}
    rows = []
    for suite in card.suites:
        rows.append(f"<tr><th colspan=4>{html.escape(suite.name)}</th></tr>")
        if suite.skipped:
            rows.append(f"<tr><td colspan=4>skipped: {html.escape(suite.skipped)}</td></tr>")
            continue
        for m in suite.metrics:
            before = old.get(m.name)
            b = before.value if before else None
            scale = bar_scale(m, b)
            worse = before is not None and _worse(before, m.value)
            rows.append(
                "<tr>"
                f"<td><code>{html.escape(m.name)}</code><br><small>"
                f"{html.escape(m.description)}</small></td>"
                f"<td>{_bar(b, scale, 'base')}{_bar(m.value, scale, 'worse' if worse else 'now')}"
                "</td>"
                f"<td>{_fmt(b, m.unit) if before else '—'}</td>"
                f"<td>{_fmt(m.value, m.unit)}</td>"
                "</tr>"
            )
    title = "Evaluation scorecard" + (" compared with the baseline" if baseline else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: left; }}
th {{ background: #f3f3f3; }}
.bar {{ height: 0.8em; margin: 2px 0; }}
.base {{ background: #9e9e9e; }} .now {{ background: #1e88e5; }} .worse {{ background: #e53935; }}
</style></head><body>
<h1>{title}</h1>
<p>Grey: baseline; blue: this run; red: this run, worse than the baseline.
Shares are drawn on a 0&ndash;1 scale, judge scores on 1&ndash;10, other numbers relative
to the larger of the two.</p>
<table><tr><th>metric</th><th>chart</th><th>baseline</th><th>this run</th></tr>
{chr(10).join(rows)}
</table></body></html>
"""


def bar_scale(metric: Metric, baseline: float | None) -> float:
    """The full length of a metric's bar: shares on 0-1, judge scores on 1-10, other
    numbers relative to the larger of now and the baseline."""
    if metric.unit == "share":
        return 1.0
    if metric.unit == "score":
        return 10.0
    return max(abs(metric.value or 0), abs(baseline or 0), 1e-9)


def _bar(value: float | None, scale: float, kind: str) -> str:
    if value is None:
        return '<div class="bar"></div>'
    width = max(0.0, min(1.0, abs(value) / scale)) * 240
    return f'<div class="bar {kind}" style="width:{width:.0f}px"></div>'
