"""The final report: its JSON structure and its Markdown rendering.

Sources are numbered per document in order of first citation, so `[1]` is the
first document a reader meets and two passages of one document share a number;
retrieved-but-uncited documents are listed after the cited ones without a number.
"""

from __future__ import annotations

import html

from pydantic import Field

from fte.changes import Changes, content_hash
from fte.changes import render_markdown as render_changes
from fte.citations import CheckedSection
from fte.contracts import (
    AgentModels,
    CheckedClaim,
    CitationIntegrity,
    Contract,
    Gap,
    RoundReport,
    Source,
    Spend,
    SubQuestion,
    TokenUsage,
)
from fte.text import counted


class NumberedSource(Contract):
    number: int | None = Field(
        description="Citation number in the text, shared by passages of one document; "
        "None if never cited."
    )
    id: str
    title: str
    location: str
    section: str = Field(default="", description="Heading path of the passage in its document.")
    page: int | None = Field(default=None, description="Page of the passage in a PDF.")
    retrieved_at: str
    passage_id: str
    content_hash: str = Field(
        default="", description="Hash of the passage text: the same text in two runs matches."
    )


class RefusedPage(Contract):
    """A web page a search found but did not fetch (fte.web.SafeFetcher's reason)."""

    url: str
    reason: str


class Report(Contract):
    task_id: str
    query: str
    title: str
    summary: str
    sections: list[CheckedSection]
    sources: list[NumberedSource]
    sub_questions: list[SubQuestion]
    plan_rationale: str
    claims: list[CheckedClaim]
    integrity: CitationIntegrity
    usage_by_agent: dict[str, TokenUsage]
    usage_total: TokenUsage
    stage_seconds: dict[str, float]
    models: AgentModels
    started_at: str
    finished_at: str
    llm_endpoint: str = Field(default="", description="Which model server produced this report.")
    changes: Changes | None = Field(
        default=None, description="What changed since the run this one is compared with."
    )
    rounds: list[RoundReport] = Field(
        default_factory=list,
        description="Gap-filling rounds: what each looked for, found and added.",
    )
    remaining_gaps: list[Gap] = Field(
        default_factory=list, description="What the research has still not settled."
    )
    spend: Spend | None = Field(
        default=None, description="Spend against the run's budget (runs with a budget only)."
    )
    refused_pages: list[RefusedPage] = Field(
        default_factory=list, description="Web pages the searches would not fetch, and why."
    )


def number_sources(sections: list[CheckedSection], sources: list[Source]) -> list[NumberedSource]:
    location = {s.id: s.location for s in sources}
    order: dict[str, int] = {}  # document location -> citation number
    for section in sections:
        for paragraph in section.paragraphs:
            for source_id in paragraph.source_ids:
                order.setdefault(location[source_id], len(order) + 1)
    numbered = [
        NumberedSource(
            number=order.get(s.location),
            id=s.id,
            title=s.title,
            location=s.location,
            section=s.section,
            page=s.page,
            retrieved_at=s.retrieved_at,
            passage_id=s.passage_id,
            content_hash=content_hash(s.text),
        )
        for s in sources
    ]
    return sorted(numbered, key=lambda s: (s.number is None, s.number or 0, s.id))


def documents(sources: list[NumberedSource]) -> tuple[list[NumberedSource], list[NumberedSource]]:
    """One entry per cited document (by number) and per uncited document (by location)."""
    cited: dict[int, NumberedSource] = {}
    uncited: dict[str, NumberedSource] = {}
    for s in sources:
        if s.number is not None:
            cited.setdefault(s.number, s)
    cited_locations = {s.location for s in cited.values()}
    for s in sources:
        if s.number is None and s.location not in cited_locations:
            uncited.setdefault(s.location, s)
    return sorted(cited.values(), key=lambda s: s.number or 0), list(uncited.values())


def place(source: NumberedSource) -> str:
    """Where in its document a passage is: its heading path and/or PDF page ("" if neither)."""
    parts = [f"§ {source.section}"] if source.section else []
    if source.page is not None:
        parts.append(f"p. {source.page}")
    return ", ".join(parts)


def places_cited(sources: list[NumberedSource], number: int | None) -> list[str]:
    """The places of a cited document's passages, so a reader can find the quoted text."""
    return list(dict.fromkeys(p for s in sources if s.number == number and (p := place(s))))


def md(text: str) -> str:
    """Text from sources, models or users as Markdown that shows it and does nothing else.

    Raw HTML (`<script>`) is escaped and link brackets are backslashed, so no passage can
    add markup, a link or an image to the report.
    """
    escaped = html.escape(text, quote=False)
    return escaped.replace("[", "\\[").replace("]", "\\]")


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


# How each kind of gap is named to a reader (Markdown and HTML reports).
GAP_LABELS = {
    "unanswered": "Unanswered",
    "contradicted": "Contradicted claim",
    "unverifiable": "Unverified claim",
    "follow_up": "Follow-up",
}


def round_summary(r: RoundReport) -> str:
    """One gap-filling round in a sentence (Markdown and HTML reports, the web console)."""
    text = (
        f"Round {r.round} looked for {counted(len(r.looked_for), 'gap')}, found "
        f"{counted(len(r.sources_found), 'new source')} and added "
        f"{counted(len(r.claims_added), 'claim')} ({r.supported_added} supported)."
    )
    return text + (f" ({r.note})" if r.note else "")


def budget_stop_sentence(stopped: str) -> str:
    """`Spend.stopped` (a clause) as the sentence the reports and the console show."""
    return stopped[0].upper() + stopped[1:] + "."


def _rounds_markdown(report: Report) -> list[str]:
    """Research rounds, the budget's word if it ended them, and the gaps that remain."""
    lines: list[str] = []
    stopped = report.spend.stopped if report.spend else None
    if report.rounds or stopped:
        lines += ["## Research rounds", ""]
        lines += [f"- {md(round_summary(r))}" for r in report.rounds]
        if stopped:
            lines += ["", f"**{md(budget_stop_sentence(stopped))}**"]
        lines += [""]
    if report.remaining_gaps:
        lines += ["## Remaining gaps", ""]
        lines += [f"- {GAP_LABELS[g.kind]}: {md(g.question)}" for g in report.remaining_gaps]
        lines += [""]
    return lines


def render_markdown(report: Report) -> str:
    numbers = {s.id: s.number for s in report.sources if s.number is not None}
    lines = [f"# {md(report.title)}", ""]
    if report.llm_endpoint:
        lines += [f"> Generated by {report.llm_endpoint}.", ""]
    lines += [f"**Question:** {md(report.query)}", "", md(report.summary), ""]
    if report.changes is not None:
        lines += [md(line) for line in render_changes(report.changes)]
    for section in report.sections:
        lines += [f"## {md(section.heading)}", ""]
        for paragraph in section.paragraphs:
            cited_numbers = dict.fromkeys(numbers[s] for s in paragraph.source_ids if s in numbers)
            marks = "".join(f"[{n}]" for n in cited_numbers)
            flags = [f"unverified source {s}" for s in paragraph.unknown_source_ids]
            flags += [
                f"claim {c} not supported by its sources" for c in paragraph.unsupported_claim_ids
            ]
            text = md(paragraph.text.strip())
            if marks:
                text += f" {marks}"
            if flags:
                text += f" **[{'; '.join(flags)}]**"
            lines += [text, ""]

    lines += _rounds_markdown(report)
    cited_documents, uncited = documents(report.sources)
    lines += ["## Sources", ""]
    for s in cited_documents:
        places = places_cited(report.sources, s.number)
        where = f" at {md('; '.join(places))}" if places else ""
        lines.append(
            f"{s.number}. {md(s.title)} — {_code(s.location)}{where} (retrieved {s.retrieved_at})"
        )
    if uncited:
        lines += ["", "Also retrieved, not cited:", ""]
        lines += [f"- {md(s.title)} — {_code(s.location)}" for s in uncited]
    if report.refused_pages:
        lines += ["", "Web pages not fetched:", ""]
        lines += [f"- {_code(p.url)} — {md(p.reason)}" for p in report.refused_pages]
    i = report.integrity
    lines += [
        "",
        "---",
        f"Citation check ({i.policy}): {i.citations_checked} citations checked, "
        f"{i.unknown_sources} to unretrieved sources, {i.unsupported_claims} unsupported claims, "
        f"{i.paragraphs_removed} paragraphs removed, {i.marked} marked. "
        f"Tokens: {report.usage_total.total_tokens} in {report.usage_total.calls} model calls.",
        "",
    ]
    return "\n".join(lines)
