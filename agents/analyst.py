"""Analyst: reads the retrieved sources and extracts atomic, cited factual claims."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from pydantic import BaseModel, Field

from fte.agents.agent import Agent
from fte.contracts import Claim, Contract, QuotedSource, SubQuestion
from fte.text import Sentence, inverse_document_frequency, sentences, term_set

log = structlog.get_logger(__name__)

# Offline extraction: how closely a sentence must match a sub-question, and how many to take.
OFFLINE_MIN_SCORE = 0.3
OFFLINE_CLAIMS_PER_QUESTION = 3
OFFLINE_SUMMARY_MAX_CLAIMS = 4


class AnalystInput(Contract):
    """The research question, its sub-questions, and every source retrieved for them."""

    query: str
    sub_questions: list[SubQuestion]
    sources: list[QuotedSource]


class ExtractedClaim(BaseModel):
    """One factual statement taken from the sources, with the sources that state it."""

    text: str = Field(
        description=(
            "A single self-contained factual statement in plain prose: names its subject, "
            "keeps numbers, dates and units exact, no citation markers."
        )
    )
    source_ids: list[str] = Field(
        min_length=1,
        description="IDs of the sources (e.g. 'S3') whose text directly states this claim.",
    )
    sub_question_id: str | None = Field(
        default=None,
        description="ID of the sub-question (e.g. 'q2') this claim helps answer, if any.",
    )


class AnalystOutput(BaseModel):
    """The claims that answer the research query, and a short synthesis of them."""

    claims: list[ExtractedClaim] = Field(
        description="Claims supported by the sources, grouped by sub-question; no duplicates."
    )
    summary: str = Field(
        description=(
            "A short paragraph on what the sources establish, where they disagree, and which "
            "sub-questions they leave unanswered."
        )
    )


class Analysis(Contract):
    """The checked claims, each with a run-scoped ID and only citations of retrieved sources."""

    claims: list[Claim]
    summary: str


def rules(inputs: AnalystInput, output: AnalystOutput) -> Analysis:
    known = {s.id for s in inputs.sources}
    questions = {q.id for q in inputs.sub_questions}
    claims: list[Claim] = []
    for extracted in output.claims:
        cited = [s for s in dict.fromkeys(extracted.source_ids) if s in known]
        if not cited or not extracted.text.strip():
            # A claim that cites nothing retrieved cannot be fact-checked; drop it here.
            log.info("analyst claim dropped: cites no retrieved source")
            continue
        sub_question = extracted.sub_question_id
        claims.append(
            Claim(
                id=f"C{len(claims) + 1}",
                text=extracted.text.strip(),
                source_ids=cited,
                sub_question_id=sub_question if sub_question in questions else None,
            )
        )
    return Analysis(claims=claims, summary=output.summary)


# -- offline twin -----------------------------------------------------------------


@dataclass
class _Candidate:
    """A claimable sentence and every source whose text contains it."""

    sentence: Sentence
    source_ids: list[str]
    order: int


def without_summary(result: Analysis) -> Analysis:
    """The claims without the analyst's summary, which no workflow reads."""
    return result.model_copy(update={"summary": ""})


def offline(inputs: AnalystInput) -> AnalystOutput:
    """Per sub-question, the source sentences that cover most of its words, quoted verbatim."""
    candidates = _claimable_sentences(inputs.sources)
    idf = inverse_document_frequency([c.sentence.terms for c in candidates])
    used: set[str] = set()
    claims: list[ExtractedClaim] = []
    best_by_question: dict[str, str] = {}
    for question in inputs.sub_questions:
        for candidate in _best_sentences(question.text, candidates, idf, used):
            used.add(candidate.sentence.text)
            best_by_question.setdefault(question.id, candidate.sentence.text)
            claims.append(
                ExtractedClaim(
                    text=candidate.sentence.text,
                    source_ids=candidate.source_ids,
                    sub_question_id=question.id,
                )
            )
    return AnalystOutput(claims=claims, summary=_summary(inputs.sub_questions, best_by_question))


def _claimable_sentences(sources: Sequence[QuotedSource]) -> list[_Candidate]:
    # Overlapping chunks repeat sentences; one candidate per sentence citing every source
    # that states it is what "no duplicate claims" asks for.
    by_text: dict[str, _Candidate] = {}
    for source in sources:
        for sentence in sentences(source.text):
            if not sentence.claimable:
                continue
            candidate = by_text.get(sentence.text)
            if candidate is None:
                by_text[sentence.text] = _Candidate(sentence, [source.id], len(by_text))
            elif source.id not in candidate.source_ids:
                candidate.source_ids.append(source.id)
    return list(by_text.values())


def _best_sentences(
    question: str, candidates: Sequence[_Candidate], idf: dict[str, float], used: set[str]
) -> list[_Candidate]:
    """Up to three sentences that cover most of the question's words, rare words weighing more.

    Weighting by rarity keeps a word every passage shares ("workflow") from outvoting the
    word that makes the question specific ("timer").
    """
    wanted = term_set(question)
    ceiling = math.log(1 + max(len(candidates), 1))
    total = sum(idf.get(term, ceiling) for term in wanted)
    if not total:
        return []
    scored = []
    for candidate in candidates:
        shared = wanted & candidate.sentence.terms
        score = sum(idf[term] for term in shared) / total
        if score >= OFFLINE_MIN_SCORE and len(shared) >= min(2, len(wanted)):
            if candidate.sentence.text not in used:
                scored.append((-score, -len(shared), candidate.order, candidate))
    scored.sort(key=lambda item: item[:3])
    return [candidate for *_, candidate in scored[:OFFLINE_CLAIMS_PER_QUESTION]]


def _summary(sub_questions: Sequence[SubQuestion], best: dict[str, str]) -> str:
    if not sub_questions:
        return "Offline extractive analysis: there were no sub-questions to answer."
    if not best:
        return (
            "Offline extractive analysis: no sentence in the sources matches any sub-question "
            "closely enough, so no claims were extracted."
        )
    parts = [best[q.id] for q in sub_questions if q.id in best][:OFFLINE_SUMMARY_MAX_CLAIMS]
    unanswered = [q.id for q in sub_questions if q.id not in best]
    summary = (
        "Offline extractive analysis: claims are sentences quoted from the sources that best "
        "match each sub-question. " + " ".join(parts)
    )
    if unanswered:
        summary += f" No source sentence matched {', '.join(unanswered)}."
    return summary


AGENT = Agent(
    name="analyst",
    prompt="analyst",
    input_model=AnalystInput,
    output_model=AnalystOutput,
    result_model=Analysis,
    rules=rules,
    offline=offline,
    brief=without_summary,
)
