"""Source finder: turns a sub-question into search queries, then judges what came back.

It has two prompts because it does two jobs at two moments: before the search (what to look
for) and after it (which passages actually help).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from fte.agents.prompting import load_prompt, render
from fte.contracts import Passage
from fte.llm import LLMClient, LLMResult

QUERIES_PROMPT_NAME = "source_finder_queries"
RELEVANCE_PROMPT_NAME = "source_finder_relevance"
QUERIES_AGENT = "source_finder.queries"
RELEVANCE_AGENT = "source_finder.relevance"


class SearchQueries(BaseModel):
    """Search queries to run against the document corpus for one sub-question."""

    queries: list[str] = Field(
        min_length=1,
        max_length=4,
        description=(
            "Distinct keyword-style search queries, best first: the key terms, names and "
            "synonyms a relevant passage would contain, not full sentences."
        ),
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


def propose_queries(llm: LLMClient, *, model: str, sub_question: str) -> LLMResult[SearchQueries]:
    system, user = load_prompt(QUERIES_PROMPT_NAME)
    return llm.structured(
        agent=QUERIES_AGENT,
        model=model,
        system=system,
        user=render(user, sub_question=sub_question.strip()),
        output_model=SearchQueries,
    )


def judge_relevance(
    llm: LLMClient, *, model: str, sub_question: str, candidates: list[Passage]
) -> LLMResult[RelevanceJudgement]:
    system, user = load_prompt(RELEVANCE_PROMPT_NAME)
    return llm.structured(
        agent=RELEVANCE_AGENT,
        model=model,
        system=system,
        user=render(
            user,
            sub_question=sub_question.strip(),
            candidates=_format_candidates(candidates),
        ),
        output_model=RelevanceJudgement,
    )


def _format_candidates(candidates: list[Passage]) -> str:
    if not candidates:
        return "(no candidates)"
    return "\n\n".join(
        f'<passage passage_id="{passage.passage_id}">\n'
        f"title: {passage.title}\n"
        f"{passage.text.strip()}\n"
        "</passage>"
        for passage in candidates
    )
