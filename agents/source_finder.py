"""Source finder: turns a sub-question into search queries, then judges what came back.

It is two agents because it does two jobs at two moments: before the search (what to look
for) and after it (which passages actually help). The search itself is an activity.
"""

from __future__ import annotations

import re

import structlog
from pydantic import BaseModel, Field

from fte.agents import phrasing
from fte.agents.agent import Agent
from fte.contracts import Contract, Passage, Source, SourceFinderResult
from fte.text import GENERIC_WORDS, STOP_WORDS, collapse, coverage, ordered_unique, term_set
from fte.text import terms as text_terms

log = structlog.get_logger(__name__)

MAX_QUERIES = 4
# Text addressed to an AI model ("ignore your previous instructions", "note to AI
# assistants", "system prompt"): a passage carrying it is an attempted prompt injection and
# is never kept, whatever the relevance model said. A document about prompt injection that
# quotes such phrases is lost too; that is the price.
INSTRUCTIONS_TO_MODELS = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?"
    r"(?:(?:your|the|my|previous|prior|above|earlier|these|those)\s+)*"
    r"(?:instructions|prompts?|rules|directions)\b"
    r"|\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+)?"
    r"(?:ai|llm|language\s+model|assistant|chatbot)s?\b"
    r"|\bsystem\s+prompt\b",
    re.IGNORECASE,
)
# Offline relevance: the share of the question's topic words a passage must contain.
RELEVANCE_MIN_COVERAGE = 0.5


class QueriesInput(Contract):
    """The sub-question to find sources for."""

    sub_question: str


class SearchQueries(BaseModel):
    """Search queries to run against the document corpus for one sub-question."""

    queries: list[str] = Field(
        min_length=1,
        max_length=MAX_QUERIES,
        description=(
            "Distinct keyword-style search queries, best first: the key terms, names and "
            "synonyms a relevant passage would contain, not full sentences."
        ),
    )


class CheckedQueries(Contract):
    """The queries to search: the sub-question itself, then the model's, without duplicates."""

    # One more than the model may write: the sub-question is always searched too.
    queries: list[str] = Field(max_length=MAX_QUERIES + 1)


def queries_rules(inputs: QueriesInput, output: SearchQueries) -> CheckedQueries:
    # The sub-question itself is always searched too: a poor query list cannot hide it.
    queries = [collapse(q) for q in [inputs.sub_question, *output.queries] if q.strip()]
    return CheckedQueries(queries=ordered_unique(queries)[: MAX_QUERIES + 1])


def offline_queries(inputs: QueriesInput) -> SearchQueries:
    """The question's content words, its key words, and adjacent key-word pairs."""
    question = collapse(inputs.sub_question)
    words = [w for w in phrasing.split_words(question) if w.lower not in STOP_WORDS]
    key_words = [w for w in words if w.lower not in GENERIC_WORDS]
    queries = [
        " ".join(ordered_unique(w.text for w in words[:8])),
        " ".join(ordered_unique(w.text for w in key_words[:8])),
    ]
    # Bigrams of adjacent key words ("durable workflows") match phrases in passages.
    queries += [
        f"{left.text} {right.text}"
        for left, right in zip(key_words, key_words[1:], strict=False)
        if not question[left.end : right.start].strip()
        and left.lower not in phrasing.VERBS
        and right.lower not in phrasing.VERBS
    ]
    queries = [q for q in ordered_unique(queries) if q]
    return SearchQueries(queries=queries[:MAX_QUERIES] or [question.rstrip("?") or question])


QUERIES = Agent(
    name="source_finder.queries",
    prompt="source_finder_queries",
    input_model=QueriesInput,
    output_model=SearchQueries,
    result_model=CheckedQueries,
    rules=queries_rules,
    offline=offline_queries,
)


class Candidate(Contract):
    """A passage the search returned."""

    passage_id: str
    title: str
    text: str


class RelevanceInput(Contract):
    """The sub-question, the passages the search returned, and how many to keep at most."""

    sub_question: str
    candidates: list[Candidate]
    keep: int = Field(ge=1)

    @classmethod
    def of(cls, sub_question: str, passages: list[Passage], keep: int) -> RelevanceInput:
        """The judgement's input for the search's passages, as both source finders send it."""
        return cls(
            sub_question=sub_question,
            candidates=[
                Candidate(passage_id=p.passage_id, title=p.title, text=p.text) for p in passages
            ],
            keep=keep,
        )


class RelevanceJudgement(BaseModel):
    """Which candidate passages help answer the sub-question."""

    relevant_passage_ids: list[str] = Field(
        description=(
            "passage_id of every candidate that contains information answering the "
            "sub-question, most useful first; empty if none does. Only IDs from the candidates."
        )
    )
    notes: str = Field(
        default="",
        description="One sentence on what is missing, if the relevant passages leave gaps.",
    )


class RelevantPassages(Contract):
    """The checked judgement: offered passage IDs only, at most `keep`, most useful first."""

    relevant_passage_ids: list[str]
    notes: str = ""


def relevance_rules(inputs: RelevanceInput, output: RelevanceJudgement) -> RelevantPassages:
    # Only IDs that were offered count: the model cannot invent a source here; nor can a
    # passage that gives the model instructions reach the agents after this one.
    injected = {c.passage_id for c in inputs.candidates if carries_instructions(c)}
    if injected:
        log.warning("passages dropped: text addressed to an AI model", passages=sorted(injected))
    offered = {c.passage_id for c in inputs.candidates} - injected
    kept = [p for p in ordered_unique(output.relevant_passage_ids) if p in offered]
    return RelevantPassages(relevant_passage_ids=kept[: inputs.keep], notes=output.notes)


def carries_instructions(candidate: Candidate) -> bool:
    return INSTRUCTIONS_TO_MODELS.search(f"{candidate.title}\n{candidate.text}") is not None


def offline_relevance(inputs: RelevanceInput) -> RelevanceJudgement:
    """Passages that contain enough of the question's topic words, most overlap first."""
    question = inputs.sub_question
    wanted = term_set(question, drop=GENERIC_WORDS) or term_set(question)
    scored = []
    for index, passage in enumerate(inputs.candidates):
        found_terms = text_terms(f"{passage.title}\n{passage.text}")
        found = frozenset(found_terms)
        share = coverage(wanted, found)
        # Enough of the question's topic words, and more than one when it has several.
        if share >= RELEVANCE_MIN_COVERAGE and len(wanted & found) >= min(2, len(wanted)):
            frequency = sum(1 for t in found_terms if t in wanted) / (len(found_terms) or 1)
            scored.append((-share, -frequency, index, passage.passage_id))
    kept = [passage_id for *_, passage_id in sorted(scored)]
    how = (
        f"share at least {RELEVANCE_MIN_COVERAGE:.0%} of the question's topic words "
        f"({', '.join(sorted(wanted)) or 'none'})"
    )
    total = len(inputs.candidates)
    if kept:
        notes = (
            f"Judged offline by word overlap: kept {len(kept)} of {total} candidates "
            f"that {how}, most overlap first."
        )
    else:
        notes = f"Judged offline by word overlap: none of the {total} candidates {how}."
    return RelevanceJudgement(relevant_passage_ids=kept, notes=notes)


RELEVANCE = Agent(
    name="source_finder.relevance",
    prompt="source_finder_relevance",
    input_model=RelevanceInput,
    output_model=RelevanceJudgement,
    result_model=RelevantPassages,
    rules=relevance_rules,
    offline=offline_relevance,
)


# -- the run's sources ------------------------------------------------------------


def number_new(
    results: list[SourceFinderResult], *, known_passage_ids: set[str], numbered_from: int
) -> list[Source]:
    """The distinct passages not among the known ones, numbered on from `numbered_from`."""
    sources: list[Source] = []
    seen = set(known_passage_ids)
    for result in results:
        for passage in result.passages:
            if passage.passage_id in seen:
                continue
            seen.add(passage.passage_id)
            sources.append(
                Source(
                    id=f"S{numbered_from + len(sources) + 1}",
                    passage_id=passage.passage_id,
                    title=passage.title,
                    location=passage.location,
                    section=passage.section,
                    page=passage.page,
                    text=passage.text,
                    retrieved_at=passage.retrieved_at or result.retrieved_at,
                    sub_question_id=result.sub_question_id,
                )
            )
    return sources
