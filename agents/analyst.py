"""Analyst: reads the retrieved sources and extracts atomic, cited factual claims."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fte.agents.prompting import load_prompt, render, source_block
from fte.contracts import Source, SubQuestion
from fte.llm import LLMClient, LLMResult

PROMPT_NAME = "analyst"
AGENT = "analyst"


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


def analyse(
    llm: LLMClient,
    *,
    model: str,
    query: str,
    sub_questions: list[SubQuestion],
    sources: list[Source],
) -> LLMResult[AnalystOutput]:
    system, user = load_prompt(PROMPT_NAME)
    return llm.structured(
        agent=AGENT,
        model=model,
        system=system,
        user=render(
            user,
            query=query.strip(),
            sub_questions="\n".join(f"- {q.id}: {q.text}" for q in sub_questions) or "(none)",
            sources="\n\n".join(source_block(s) for s in sources) or "(no sources)",
        ),
        output_model=AnalystOutput,
    )
