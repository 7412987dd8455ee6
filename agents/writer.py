"""Writer: turns fact-checked claims into a structured report that cites sources by ID."""

from __future__ import annotations

import re
from collections.abc import Sequence

import structlog
from pydantic import BaseModel, Field

from fte.agents import phrasing
from fte.agents.agent import Agent
from fte.contracts import CheckedClaim, Contract, Source, SubQuestion
from fte.text import NUMBER, collapse, coverage, ordered_unique, sentences, term_set

log = structlog.get_logger(__name__)

# A sentence of a paragraph that states claims must share this much of its words with them.
GROUNDED_MIN_COVERAGE = 0.6
_MAX_COUNT = 100
# Connective text talks about the question and the report, not about the subject: its
# words come from the query and the plan, or from this vocabulary of report-talk.
_REPORT_TALK = term_set(
    """report reports statement statements sentence sentences claim claims source sources
    passage passages document documents evidence fact facts check checked confirmed
    confirm unsupported contradicted supported verified question questions sub-question
    sub-questions plan research answer answers answered settle settled leave left out
    quoted quote extracted cited cite retrieved finding findings section sections summary
    offline language model assembled chosen word words overlap miss relevant material uses
    different above below following therefore however also overall together findings
    limit limits fuller needs more topic configured contain contains state states none
    because list listed their them those these this that which sources' writer"""
)
_CONNECTIVE_MIN_KNOWN = 0.8
# What connective text (a title, a heading, a paragraph that states no claim) must never
# carry: links, addresses, markup, or instructions a source slipped to the model.
UNSAFE_TEXT = re.compile(
    r"https?://|\bwww\.|\S+@\S+\.\w|javascript:|<\s*/?\s*[a-z!]|\]\(|"
    r"\b(?:ignore|disregard)\b.{0,40}\b(?:instructions?|prompts?|rules)\b|"
    r"\b(?:system prompt|instructions?|click|visit)\b",
    re.IGNORECASE,
)

# Offline layout: claims per paragraph and in the summary.
OFFLINE_PARAGRAPH_MAX_CLAIMS = 3
OFFLINE_SUMMARY_MAX_CLAIMS = 4
OFFLINE_SUMMARY_MIN_SENTENCES = 3


class SourceRef(Contract):
    """A source the report may cite, by ID."""

    id: str
    title: str
    location: str


class WriterInput(Contract):
    """The question, the plan, the fact-checked claims and the sources they cite."""

    query: str
    sub_questions: list[SubQuestion]
    claims: list[CheckedClaim]
    sources: list[SourceRef]

    @classmethod
    def of(
        cls,
        query: str,
        sub_questions: list[SubQuestion],
        checked: Sequence[CheckedClaim],
        sources: Sequence[Source],
    ) -> WriterInput:
        """The writer sees only supported claims and only the sources they cite."""
        supported = [c for c in checked if c.verdict == "supported"]
        cited = {s for c in supported for s in c.claim.source_ids}
        return cls(
            query=query,
            sub_questions=sub_questions,
            claims=supported,
            sources=[
                SourceRef(id=s.id, title=s.title, location=s.location)
                for s in sources
                if s.id in cited
            ],
        )


class ReportParagraph(BaseModel):
    """One paragraph of prose and the claims and sources it rests on."""

    text: str = Field(
        description=(
            "Plain prose with no citation markers, brackets or source IDs in it; citations go "
            "in source_ids and are numbered later."
        )
    )
    claim_ids: list[str] = Field(
        description="IDs of the claims (e.g. 'C4') this paragraph states or discusses."
    )
    source_ids: list[str] = Field(
        description=(
            "IDs of the sources (e.g. 'S3') backing this paragraph: the sources of its claims. "
            "Empty only for paragraphs that state no facts."
        )
    )


class ReportSection(BaseModel):
    """A titled part of the report, usually one per theme or sub-question."""

    heading: str = Field(description="A short, specific section heading.")
    paragraphs: list[ReportParagraph] = Field(min_length=1)


class WriterOutput(BaseModel):
    """The research report."""

    title: str = Field(description="A specific title that reflects the answer, not the query.")
    summary: str = Field(
        description="Three to five sentences answering the query directly, no citation markers."
    )
    sections: list[ReportSection] = Field(min_length=1)


def rules(inputs: WriterInput, output: WriterOutput) -> WriterOutput:
    """A paragraph that states claims, and the summary, say only what the claims say.

    Each sentence of such a paragraph must be made of its claims' words (and numbers): a
    sentence the claims do not carry (an instruction obeyed from a source, an invented
    aside) is dropped, and a paragraph left with no sentence is dropped. A sentence of the
    summary must be carried by at most two of the supported claims (a summary may join two
    findings, not invent a third). Connective text (the title, headings, and paragraphs
    that name no claim) may carry no link, address, markup or instruction-like phrase and
    no figure the claims do not have: such a sentence is dropped, such a heading becomes
    "Findings" and such a title is replaced by one made from the query.
    """
    claims = {c.claim.id: c.claim.text for c in inputs.claims}
    said = list(claims.values())
    asked = term_set(" ".join([inputs.query, *(q.text for q in inputs.sub_questions)]))
    sections = []
    dropped = 0
    for section in output.sections:
        paragraphs = []
        for paragraph in section.paragraphs:
            stated = [claims[c] for c in paragraph.claim_ids if c in claims]
            every = sentences(paragraph.text)
            if stated:
                kept = [s.raw for s in every if _grounded(s.raw, stated)]
            else:
                # Connective text states no claim, so it may carry no figure the claims do
                # not have, and nothing a source could have planted.
                kept = [
                    s.raw
                    for s in every
                    if _connective(s.raw, said) and _about_the_report(s.raw, asked)
                ]
            dropped += len(every) - len(kept)
            if not kept:
                continue
            paragraphs.append(paragraph.model_copy(update={"text": " ".join(kept)}))
        if paragraphs:
            heading = section.heading if _connective(section.heading, said) else "Findings"
            sections.append(
                section.model_copy(update={"heading": heading, "paragraphs": paragraphs})
            )
    summary = [s.raw for s in sentences(output.summary) if _carried(s.raw, said)]
    dropped += len(sentences(output.summary)) - len(summary)
    if dropped:
        log.info("writer sentences dropped: not carried by their claims", count=dropped)
    if not sections:
        note = "None of the draft's paragraphs was carried by the fact-checked claims."
        sections = [
            ReportSection(
                heading="Findings",
                paragraphs=[ReportParagraph(text=note, claim_ids=[], source_ids=[])],
            )
        ]
    # The title is read before anything else: one a source could have written is replaced.
    title = output.title if _connective(output.title, said) else ""
    title = title or phrasing.report_title(inputs.query)
    return output.model_copy(
        update={"title": title, "sections": sections, "summary": " ".join(summary)}
    )


def _connective(text: str, claims: Sequence[str]) -> bool:
    """Text that carries no link, markup or instruction, and no figure the claims lack.

    Small whole numbers are counts ("2 of the 6 sub-questions"), which connective text
    may give; a year, a measure or a price is a fact, and facts come from claims.
    """
    numbers = set(NUMBER.findall(text)) - set(NUMBER.findall(" ".join(claims)))
    figures = [n for n in numbers if not (n.isdigit() and int(n) < _MAX_COUNT)]
    return not figures and UNSAFE_TEXT.search(text) is None


def _about_the_report(text: str, asked: frozenset[str]) -> bool:
    """Whether a sentence's words come from the question and plan, or from report-talk.

    A claim-less sentence that brings words of its own ("cancelling always rolls back
    every side effect") states a fact no claim carries, so it is not connective.
    """
    words = frozenset(t for t in term_set(text) if not t.isdigit())  # counts: see above
    return coverage(words, asked | _REPORT_TALK) >= _CONNECTIVE_MIN_KNOWN if words else True


def _carried(sentence: str, claims: Sequence[str]) -> bool:
    """Whether one claim, or two together, carry `sentence` (see `_grounded`)."""
    wanted = term_set(sentence)
    best = sorted(claims, key=lambda c: -len(wanted & term_set(c)))[:2]
    return bool(best) and _grounded(sentence, best)


def _grounded(sentence: str, claims: Sequence[str]) -> bool:
    said = " ".join(claims)
    numbers = set(NUMBER.findall(sentence)) - set(NUMBER.findall(said))
    return not numbers and coverage(term_set(sentence), term_set(said)) >= GROUNDED_MIN_COVERAGE


# -- offline twin -----------------------------------------------------------------

_Usable = tuple[CheckedClaim, list[str]]  # a supported claim and its citable sources


def offline(inputs: WriterInput) -> WriterOutput:
    """One section per answered sub-question, each paragraph quoting supported claims."""
    listed = {s.id for s in inputs.sources}
    # Only supported claims are stated, each citing only sources the input lists.
    usable = [
        (checked, cited)
        for checked in inputs.claims
        if checked.verdict == "supported"
        and (cited := [s for s in ordered_unique(checked.claim.source_ids) if s in listed])
    ]
    title = phrasing.report_title(inputs.query)
    groups, unanswered = _group_by_sub_question(usable, inputs.sub_questions, title)
    summary = _summary_claims(inputs.query, [[c for c, _ in members] for _, members in groups])
    quoted = {checked.claim.id for checked in summary}
    sections = [_section(heading, members, quoted=quoted) for heading, members in groups]
    supported = sum(c.verdict == "supported" for c in inputs.claims)
    sections.append(
        _limits_section(
            inputs.claims,
            uncitable=supported - len(usable),
            unanswered=unanswered,
            planned=len({q.id for q in inputs.sub_questions}),
        )
    )
    return WriterOutput(title=title, summary=_report_summary(summary), sections=sections)


def _group_by_sub_question(
    usable: Sequence[_Usable], sub_questions: Sequence[SubQuestion], title: str
) -> tuple[list[tuple[str, list[_Usable]]], list[str]]:
    """Headed groups of claims, one per answered sub-question in the plan's order, then the rest.

    Also returns the texts of the sub-questions that no usable claim answers.
    """
    texts: dict[str, str] = {}
    for question in sub_questions:
        texts.setdefault(question.id, question.text)
    by_question: dict[str, list[_Usable]] = {question_id: [] for question_id in texts}
    other: list[_Usable] = []
    for item in usable:
        by_question.get(item[0].claim.sub_question_id or "", other).append(item)
    groups = [
        (phrasing.question_heading(texts[question_id], title=title), members)
        for question_id, members in by_question.items()
        if members
    ]
    if other:
        groups.append(("Other findings" if groups else "Findings", other))
    unanswered = [texts[question_id] for question_id, members in by_question.items() if not members]
    return groups, unanswered


def _section(heading: str, members: Sequence[_Usable], *, quoted: set[str]) -> ReportSection:
    # Opening with the sentence the summary just quoted would read as a repeat, so lead with
    # the first claim it does not quote, when there is one; the rest keep their order.
    lead = next((i for i, (c, _) in enumerate(members) if c.claim.id not in quoted), 0)
    members = [members[lead], *members[:lead], *members[lead + 1 :]]
    paragraphs = []
    for start in range(0, len(members), OFFLINE_PARAGRAPH_MAX_CLAIMS):
        chunk = members[start : start + OFFLINE_PARAGRAPH_MAX_CLAIMS]
        paragraphs.append(
            ReportParagraph(
                text=" ".join(collapse(c.claim.text) for c, _ in chunk),
                claim_ids=[c.claim.id for c, _ in chunk],
                source_ids=ordered_unique(s for _, cited in chunk for s in cited),
            )
        )
    return ReportSection(heading=heading, paragraphs=paragraphs)


def _limits_section(
    claims: Sequence[CheckedClaim], *, uncitable: int, unanswered: Sequence[str], planned: int
) -> ReportSection:
    """Say plainly what the report leaves out and how it was made; states no source facts."""
    contradicted = sum(c.verdict == "contradicted" for c in claims)
    unsupported = sum(c.verdict == "unsupported" for c in claims)
    paragraphs = []
    if contradicted or unsupported:
        paragraphs.append(
            f"{contradicted + unsupported} of the {len(claims)} extracted statements are left "
            f"out because the fact check did not confirm them against their cited passages "
            f"({contradicted} contradicted, {unsupported} unsupported); the sources do not "
            "settle those points."
        )
    if uncitable:
        paragraphs.append(
            f"{uncitable} confirmed statements are left out because none of their sources is "
            "in the report's source list."
        )
    if unanswered:
        questions = "; ".join(f'"{collapse(text)}"' for text in unanswered)
        them = "them" if len(unanswered) > 1 else "it"
        paragraphs.append(
            f"No confirmed statement answers {len(unanswered)} of the {planned} sub-questions "
            f"of the research plan, so the sources did not settle {them}: {questions}."
        )
    paragraphs.append(
        "This report was assembled offline without a language model: every statement above is "
        "a sentence quoted from the cited sources, chosen by word overlap with the research "
        "question, so it may miss relevant material that uses different words."
    )
    return ReportSection(
        heading="Limits of this report",
        paragraphs=[ReportParagraph(text=t, claim_ids=[], source_ids=[]) for t in paragraphs],
    )


def _summary_claims(query: str, groups: Sequence[Sequence[CheckedClaim]]) -> list[CheckedClaim]:
    """The claims closest to the query, spread over the sections, in report order.

    Each section's strongest claim comes before any section's second strongest, so the summary
    covers the plan rather than only the sub-question whose words match the query best.
    """
    wanted = term_set(query)
    ranked: list[tuple[tuple[int, float, int, int], CheckedClaim]] = []
    for section, group in enumerate(groups):
        strength = [coverage(wanted, term_set(c.claim.text)) for c in group]
        by_strength = sorted(range(len(group)), key=lambda i: (-strength[i], i))
        for rank, index in enumerate(by_strength):
            ranked.append(((rank, -strength[index], section, index), group[index]))
    chosen = sorted(ranked, key=lambda item: item[0])[:OFFLINE_SUMMARY_MAX_CLAIMS]
    return [claim for _, claim in sorted(chosen, key=lambda item: item[0][2:])]


def _report_summary(claims: Sequence[CheckedClaim]) -> str:
    """Three to five sentences: the chosen claims, or what the lack of them means."""
    sentences = [collapse(c.claim.text) for c in claims]
    fuller = "A fuller answer needs more documents on the topic or a configured language model."
    if not sentences:
        sentences = [
            "The sources retrieved for this question contain no statement that the fact check "
            "could confirm.",
            "This report therefore states no findings.",
            fuller,
        ]
    elif len(sentences) < OFFLINE_SUMMARY_MIN_SENTENCES:
        plural = "s" if len(sentences) > 1 else ""
        sentences += [
            f"The sources retrieved for this question contain only {len(sentences)} "
            f"statement{plural} that the fact check could confirm.",
            fuller,
        ][: OFFLINE_SUMMARY_MIN_SENTENCES - len(sentences)]
    return " ".join(sentences)


AGENT = Agent(
    name="writer",
    prompt="writer",
    input_model=WriterInput,
    output_model=WriterOutput,
    result_model=WriterOutput,
    rules=rules,
    offline=offline,
)
