"""A self-contained HTML view of a stored report.

The file has to open anywhere, offline, and stay safe to open although its text comes from
untrusted documents and model output. So: one file with inline CSS and no script or remote
resource; every piece of report text goes through `html.escape`; and a Content-Security-
Policy that forbids scripts and remote loads, so a missed escape still could not run code or
phone home.

Sources carry the numbers stored in the report (`sources[].number`), the same numbers the
Markdown rendering uses, so `[3]` means the same source in both.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from fte.citations import CheckedParagraph
from fte.contracts import AgentModels, CheckedClaim, TokenUsage
from fte.errors import FteError
from fte.pricing import estimate_run_cost, format_cost
from fte.report import (
    GAP_LABELS,
    NumberedSource,
    Report,
    budget_stop_sentence,
    documents,
    round_summary,
)

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"

_VERDICT_LABELS = {
    "supported": "✓ supported",
    "unsupported": "? unsupported",
    "contradicted": "✗ contradicted",
}

_STYLE = """
:root {
  color-scheme: light dark;
  --fg: #1f2328; --bg: #ffffff; --muted: #59636e; --rule: #d1d9e0; --soft: #f6f8fa;
  --link: #0b57d0; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
  --flag-bg: #fff8c5; --flag-rule: #d4a72c; --banner-bg: #ddf4ff; --banner-rule: #54aeff;
}
@media (prefers-color-scheme: dark) {
  :root {
    --fg: #e6edf3; --bg: #0d1117; --muted: #9198a1; --rule: #3d444d; --soft: #151b23;
    --link: #6cb6ff; --ok: #3fb950; --warn: #d29922; --bad: #f85149;
    --flag-bg: #2e2610; --flag-rule: #9e6a03; --banner-bg: #0c2d6b; --banner-rule: #1f6feb;
  }
}
* { box-sizing: border-box; }
html { background: var(--bg); color: var(--fg); }
body {
  margin: 0 auto; padding: 2rem 1.25rem 4rem; max-width: 48rem;
  font: 1.0625rem/1.65 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
    Arial, sans-serif;
  overflow-wrap: break-word;
}
h1 { font-size: 2rem; line-height: 1.25; margin: 0 0 .75rem; }
h2 { font-size: 1.4rem; margin: 2.5rem 0 .75rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--rule); }
h3 { font-size: 1.1rem; margin: 1.75rem 0 .5rem; }
a { color: var(--link); }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--soft); padding: .1em .3em; border-radius: 4px; }
.muted { color: var(--muted); }
.question { font-size: 1.15rem; margin: 0 0 .5rem; }
.generated-by { color: var(--muted); font-size: .95rem; margin: 0 0 1rem; }
.banner { background: var(--banner-bg); border-left: 4px solid var(--banner-rule);
  padding: .75rem 1rem; margin: 1rem 0; border-radius: 4px; }
.summary { font-size: 1.1rem; border-left: 4px solid var(--rule); padding-left: 1rem;
  margin: 1.5rem 0; }
sup.cite { line-height: 0; font-size: .75em; }
sup.cite a { text-decoration: none; }
p.flagged { background: var(--flag-bg); border-left: 4px solid var(--flag-rule);
  padding: .5rem .75rem; border-radius: 4px; }
.flag { display: block; font-size: .9rem; font-weight: 600; color: var(--warn);
  margin-top: .25rem; }
ol.sources li, ul.sources li { margin-bottom: .5rem; }
ol.sources li:target, ul.sources li:target, tr:target { background: var(--flag-bg); }
.location { font-size: .9rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .95rem; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem;
  border-bottom: 1px solid var(--rule); }
th { background: var(--soft); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tfoot td { font-weight: 600; }
.verdict { font-weight: 600; white-space: nowrap; }
.verdict-supported { color: var(--ok); }
.verdict-unsupported { color: var(--warn); }
.verdict-contradicted { color: var(--bad); }
blockquote.evidence { margin: 0; padding-left: .6rem; border-left: 3px solid var(--rule);
  font-style: italic; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; }
footer { margin-top: 3rem; font-size: .85rem; color: var(--muted); }
@media print {
  :root {
    color-scheme: light;
    --fg: #000; --bg: #fff; --muted: #444; --rule: #bbb; --soft: #f2f2f2; --link: #000;
    --flag-bg: #fff8c5; --banner-bg: #eef6ff;
  }
  body { max-width: none; padding: 0; font-size: 11pt; }
  a { text-decoration: none; }
  h2, h3 { break-after: avoid; }
  p, li, tr, blockquote { break-inside: avoid; }
  thead { display: table-header-group; }
}
"""


def render_html(report: dict[str, Any]) -> str:
    """The stored report document (`Report` JSON plus its `markdown`) as one HTML page."""
    return _Page(_parse(report)).render()


def _parse(document: dict[str, Any]) -> Report:
    fields = {key: value for key, value in document.items() if key != "markdown"}
    try:
        return Report.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "document"
        raise FteError(
            f"report {document.get('task_id', '?')!s} is not in the report format "
            f"({error.error_count()} problems; first: {where}: {first['msg']})"
        ) from None


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _is_offline(llm_endpoint: str) -> bool:
    return "offline" in llm_endpoint.lower()


class _Page:
    """Renders one report; holds the anchors that citations and claims link to."""

    def __init__(self, report: Report) -> None:
        self.r = report
        self.cited, self.uncited = documents(report.sources)
        self.numbers = {s.id: s.number for s in report.sources if s.number is not None}
        # Anchors are built from positions, never from IDs the model wrote.
        self.source_anchor: dict[str, str] = {}
        self.source_label: dict[str, str] = {}
        uncited_index = {s.location: i for i, s in enumerate(self.uncited, start=1)}
        for s in report.sources:  # every passage, so a second passage of a document links too
            if s.number is not None:
                self.source_anchor.setdefault(s.id, f"source-{s.number}")
                self.source_label.setdefault(s.id, f"[{s.number}]")
            elif s.location in uncited_index:
                self.source_anchor.setdefault(s.id, f"source-uncited-{uncited_index[s.location]}")
            self.source_label.setdefault(s.id, s.title)
        self.claim_anchor: dict[str, str] = {}
        for index, checked in enumerate(report.claims, start=1):
            self.claim_anchor.setdefault(checked.claim.id, f"claim-{index}")

    def render(self) -> str:
        r = self.r
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{_e(_CSP)}">',
            '<meta name="referrer" content="no-referrer">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="FTE Research">',
            f"<title>{_e(r.title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            self._header(),
            "<main>",
            self._summary(),
            self._changes(),
            *self._sections(),
            self._rounds(),
            self._sources(),
            self._claims(),
            self._run_details(),
            "</main>",
            f"<footer>FTE Research report <code>{_e(r.task_id)}</code>, finished "
            f"{_e(r.finished_at)}.</footer>",
            "</body>",
            "</html>",
            "",
        ]
        return "\n".join(parts)

    # -- header and body text -------------------------------------------------------

    def _header(self) -> str:
        r = self.r
        out = ["<header>", f"<h1>{_e(r.title)}</h1>"]
        out.append(f'<p class="question"><strong>Question:</strong> {_e(r.query)}</p>')
        if r.llm_endpoint and _is_offline(r.llm_endpoint):
            out.append(
                '<div class="banner offline" role="note"><strong>Generated by '
                f"{_e(r.llm_endpoint)}.</strong> No language model wrote this report: its "
                "statements are sentences extracted from the sources, so read it as an "
                "organised set of excerpts rather than a written analysis.</div>"
            )
        elif r.llm_endpoint:
            out.append(f'<p class="generated-by">Generated by {_e(r.llm_endpoint)}.</p>')
        out.append("</header>")
        return "\n".join(out)

    def _summary(self) -> str:
        blocks = _blocks(self.r.summary)
        if not blocks:
            return ""
        paragraphs = "".join(f"<p>{_e(block.strip())}</p>" for block in blocks)
        return f'<section class="summary" aria-label="Summary">{paragraphs}</section>'

    def _changes(self) -> str:
        """The section on what changed since the previous run (`fte.changes`)."""
        c = self.r.changes
        if c is None:
            return ""
        out = [
            '<section id="changes">',
            f"<h2>What changed since <code>{_e(c.previous_task_id)}</code></h2>",
            f"<p>{_e(c.summary)}</p>",
        ]
        lists = [
            ("New sources", [f"{s.title} — {s.location}" for s in c.sources_added]),
            ("No longer retrieved", [f"{s.title} — {s.location}" for s in c.sources_removed]),
            ("New claims", [f"{x.text} ({x.verdict})" for x in c.claims_new]),
            ("No longer supported", [x.text for x in c.claims_no_longer_supported]),
            ("Verdict changed", [f"{v.text} ({v.before} → {v.after})" for v in c.verdicts_changed]),
        ]
        for heading, items in lists:
            if items:
                out.append(f"<h3>{_e(heading)}</h3>")
                out.append("<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>")
        out.append("</section>")
        return "\n".join(out)

    def _rounds(self) -> str:
        """Gap-filling rounds, the budget's note if it ended them, and the gaps that remain."""
        r = self.r
        stopped = r.spend.stopped if r.spend else None
        if not (r.rounds or stopped or r.remaining_gaps):
            return ""
        out = ['<section id="rounds">', "<h2>Research rounds</h2>"]
        if r.rounds:
            items = [round_summary(x) for x in r.rounds]
            out.append("<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>")
        if stopped:
            out.append(f'<p class="banner" role="note">{_e(budget_stop_sentence(stopped))}</p>')
        if r.remaining_gaps:
            out.append("<h3>Remaining gaps</h3>")
            gaps = [f"{GAP_LABELS[g.kind]}: {g.question}" for g in r.remaining_gaps]
            out.append("<ul>" + "".join(f"<li>{_e(gap)}</li>" for gap in gaps) + "</ul>")
        out.append("</section>")
        return "\n".join(out)

    def _sections(self) -> list[str]:
        out: list[str] = []
        for index, section in enumerate(self.r.sections, start=1):
            out.append(f'<section id="section-{index}">')
            out.append(f"<h2>{_e(section.heading)}</h2>")
            out += [self._paragraph(p) for p in section.paragraphs]
            out.append("</section>")
        return out

    def _paragraph(self, p: CheckedParagraph) -> str:
        cited = dict.fromkeys(self.numbers[s] for s in p.source_ids if s in self.numbers)
        marks = "".join(f'<sup class="cite"><a href="#source-{n}">[{n}]</a></sup>' for n in cited)
        flags = [f"unverified source {_e(s)}" for s in p.unknown_source_ids]
        flags += [
            f"claim {self._claim_ref(c)} not supported by its sources"
            for c in p.unsupported_claim_ids
        ]
        text = _e(p.text.strip()) + marks
        if not flags:
            return f"<p>{text}</p>"
        return (
            f'<p class="flagged">{text}'
            f'<span class="flag" role="note">⚠ Flagged: {"; ".join(flags)}</span></p>'
        )

    def _claim_ref(self, claim_id: str) -> str:
        anchor = self.claim_anchor.get(claim_id)
        if anchor is None:
            return _e(claim_id)
        return f'<a href="#{anchor}">{_e(claim_id)}</a>'

    # -- sources and claims -----------------------------------------------------------

    def _sources(self) -> str:
        out = ['<section id="sources">', "<h2>Sources</h2>"]
        if self.cited:
            out.append('<ol class="sources">')
            out += [
                f'<li id="source-{s.number}" value="{s.number}">{self._source_entry(s)}</li>'
                for s in self.cited
            ]
            out.append("</ol>")
        else:
            out.append('<p class="muted">No source is cited in the text.</p>')
        if self.uncited:
            out.append("<h3>Also retrieved, not cited</h3>")
            out.append('<ul class="sources uncited">')
            out += [
                f'<li id="{self.source_anchor[s.id]}">{self._source_entry(s)}</li>'
                for s in self.uncited
            ]
            out.append("</ul>")
        out.append("</section>")
        return "\n".join(out)

    def _source_entry(self, s: NumberedSource) -> str:
        return (
            f"<strong>{_e(s.title)}</strong><br>"
            f'<span class="location">{_location(s.location)}</span> '
            f'<span class="muted">(retrieved {_e(s.retrieved_at)}; source {_e(s.id)})</span>'
        )

    def _claims(self) -> str:
        out = ['<section id="claims">', "<h2>Claims</h2>"]
        if not self.r.claims:
            out += ['<p class="muted">No claims were extracted.</p>', "</section>"]
            return "\n".join(out)
        out += [
            "<table>",
            "<thead><tr><th>ID</th><th>Claim</th><th>Verdict</th><th>Evidence</th>"
            "<th>Evidence source</th></tr></thead>",
            "<tbody>",
        ]
        out += [self._claim_row(index, c) for index, c in enumerate(self.r.claims, start=1)]
        out += ["</tbody>", "</table>", "</section>"]
        return "\n".join(out)

    def _claim_row(self, index: int, checked: CheckedClaim) -> str:
        verdict = checked.verdict
        evidence = (
            f'<blockquote class="evidence">{_e(checked.evidence)}</blockquote>'
            if checked.evidence
            else '<span class="muted">none</span>'
        )
        return (
            f'<tr id="claim-{index}"><td><code>{_e(checked.claim.id)}</code></td>'
            f"<td>{_e(checked.claim.text)}</td>"
            f'<td class="verdict verdict-{_e(verdict)}">'
            f"{_e(_VERDICT_LABELS.get(verdict, verdict))}</td>"
            f"<td>{evidence}</td><td>{self._source_ref(checked.evidence_source_id)}</td></tr>"
        )

    def _source_ref(self, source_id: str | None) -> str:
        if not source_id:
            return '<span class="muted">—</span>'
        anchor = self.source_anchor.get(source_id)
        if anchor is None:
            return f'<span class="muted">{_e(source_id)} (not retrieved)</span>'
        return f'<a href="#{anchor}">{_e(self.source_label[source_id])}</a>'

    # -- run details --------------------------------------------------------------------

    def _run_details(self) -> str:
        r = self.r
        out = ['<section id="run-details">', "<h2>Run details</h2>", "<h3>Plan</h3>"]
        if r.sub_questions:
            out.append('<ol class="plan">')
            out += [f"<li><code>{_e(q.id)}</code> {_e(q.text)}</li>" for q in r.sub_questions]
            out.append("</ol>")
        if r.plan_rationale.strip():
            out += [f"<p>{_e(block.strip())}</p>" for block in _blocks(r.plan_rationale)]
        out += [self._integrity(), self._tokens(), self._timings(), self._times()]
        out.append("</section>")
        return "\n".join(out)

    def _integrity(self) -> str:
        i = self.r.integrity
        rows = [
            ("Citations checked", i.citations_checked),
            ("Citations of sources not retrieved", i.unknown_sources),
            ("Unsupported claims stated in the text", i.unsupported_claims),
            ("Paragraphs removed", i.paragraphs_removed),
            ("Citations removed", i.citations_removed),
            ("Paragraphs marked", i.marked),
        ]
        body = "".join(f'<tr><td>{label}</td><td class="num">{n:,}</td></tr>' for label, n in rows)
        return (
            f"<h3>Citation check</h3><p>Policy: <code>{_e(i.policy)}</code></p>"
            f'<table class="integrity"><tbody>{body}</tbody></table>'
        )

    def _tokens(self) -> str:
        r = self.r
        offline = _is_offline(r.llm_endpoint)
        if offline:
            # The offline model answers whatever model name the run asked for; nothing is billed.
            total_cost: float | None = 0.0
            costs: dict[str, float | None] = dict.fromkeys(r.usage_by_agent, 0.0)
        else:
            total_cost, costs = estimate_run_cost(r.models, r.usage_by_agent)
        models = r.models.model_dump()
        rows = [
            _usage_row(agent, models.get(agent, "—"), usage, costs.get(agent))
            for agent, usage in _in_agent_order(r.usage_by_agent)
        ]
        note = (
            "The built-in offline model ran in-process: no tokens were billed."
            if offline
            else "Costs are estimates from list prices (see <code>fte/pricing.py</code>; "
            "override with <code>FTE_PRICES</code>), not a bill."
        )
        return (
            "<h3>Tokens</h3>"
            '<table class="tokens"><thead><tr><th>Agent</th><th>Model</th>'
            '<th class="num">Calls</th><th class="num">Prompt</th>'
            '<th class="num">Completion</th><th class="num">Total</th>'
            '<th class="num">Est. cost</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody>"
            f"<tfoot>{_usage_row('All agents', '', r.usage_total, total_cost)}</tfoot></table>"
            f'<p class="muted">{note}</p>'
        )

    def _timings(self) -> str:
        stages = self.r.stage_seconds
        if not stages:
            return '<h3>Timings</h3><p class="muted">No stage timings were recorded.</p>'
        rows = "".join(
            f'<tr><td>{_e(stage)}</td><td class="num">{_e(_duration(seconds))}</td></tr>'
            for stage, seconds in stages.items()
        )
        total = _duration(sum(stages.values()))
        return (
            '<h3>Timings</h3><table class="timings"><thead><tr><th>Stage</th>'
            '<th class="num">Time</th></tr></thead>'
            f"<tbody>{rows}</tbody>"
            f'<tfoot><tr><td>All stages</td><td class="num">{_e(total)}</td></tr></tfoot>'
            "</table>"
        )

    def _times(self) -> str:
        r = self.r
        facts = [
            ("Task", f"<code>{_e(r.task_id)}</code>"),
            ("Started", _e(r.started_at)),
            ("Finished", _e(r.finished_at)),
        ]
        elapsed = _elapsed(r.started_at, r.finished_at)
        if elapsed is not None:
            facts.append(("Elapsed", _e(_duration(elapsed))))
        if r.llm_endpoint:
            facts.append(("Model server", _e(r.llm_endpoint)))
        items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in facts)
        return f'<h3>Run</h3><dl class="facts">{items}</dl>'


def _usage_row(agent: str, model: str, usage: TokenUsage, cost: float | None) -> str:
    model_cell = f"<code>{_e(model)}</code>" if model else ""
    return (
        f"<tr><td>{_e(agent)}</td><td>{model_cell}</td>"
        f'<td class="num">{usage.calls:,}</td><td class="num">{usage.prompt_tokens:,}</td>'
        f'<td class="num">{usage.completion_tokens:,}</td>'
        f'<td class="num">{usage.total_tokens:,}</td>'
        f'<td class="num">{_e(format_cost(cost))}</td></tr>'
    )


def _in_agent_order(usage_by_agent: dict[str, TokenUsage]) -> list[tuple[str, TokenUsage]]:
    """Pipeline order (the order of `AgentModels`), then any other agent by name."""
    order = {name: index for index, name in enumerate(AgentModels.model_fields)}
    return sorted(
        usage_by_agent.items(), key=lambda item: (order.get(item[0], len(order)), item[0])
    )


def _location(location: str) -> str:
    # Only plain web addresses become links; anything else (file paths, `javascript:`) is text.
    if urlsplit(location).scheme in ("http", "https"):
        return (
            f'<a href="{_e(location)}" rel="noopener noreferrer nofollow">'
            f"<code>{_e(location)}</code></a>"
        )
    return f"<code>{_e(location)}</code>"


def _blocks(text: str) -> list[str]:
    return [block for block in text.split("\n\n") if block.strip()]


def _duration(seconds: float) -> str:
    if seconds < 59.95:  # anything above rounds to "60.0 s"
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _elapsed(started: str, finished: str) -> float | None:
    try:
        return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (ValueError, TypeError):  # not ISO-8601, or one aware and one naive
        return None
