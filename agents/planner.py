"""Planner: splits a research query into sub-questions that sources can answer one by one."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fte.agents.prompting import load_prompt, render
from fte.errors import UsageError
from fte.llm import LLMClient, LLMResult

PROMPT_NAME = "planner"
AGENT = "planner"
MIN_SUB_QUESTIONS = 3
MAX_SUB_QUESTIONS = 8


class PlannerOutput(BaseModel):
    """A research plan: focused sub-questions that together answer the user's query."""

    sub_questions: list[str] = Field(
        min_length=MIN_SUB_QUESTIONS,
        max_length=MAX_SUB_QUESTIONS,
        description=(
            "Self-contained questions, most important first. Each names its subject explicitly "
            "(no 'it' or 'they'), asks one thing, and can be answered from documents."
        ),
    )
    rationale: str = Field(
        description="Two or three sentences on why these sub-questions cover the query."
    )


def plan(
    llm: LLMClient, *, model: str, query: str, max_sub_questions: int = MAX_SUB_QUESTIONS
) -> LLMResult[PlannerOutput]:
    if not MIN_SUB_QUESTIONS <= max_sub_questions <= MAX_SUB_QUESTIONS:
        raise UsageError(
            f"max_sub_questions must be between {MIN_SUB_QUESTIONS} and {MAX_SUB_QUESTIONS}, "
            f"got {max_sub_questions}"
        )
    system, user = load_prompt(PROMPT_NAME)
    result = llm.structured(
        agent=AGENT,
        model=model,
        system=system,
        user=render(user, query=query.strip(), max_sub_questions=max_sub_questions),
        output_model=PlannerOutput,
    )
    sub_questions = result.output.sub_questions
    if len(sub_questions) <= max_sub_questions:
        return result
    # The schema only knows the hard cap of 8; a smaller cap lives in the prompt, so enforce it
    # here. The prompt asks for most-important-first, so truncating keeps the best ones.
    output = result.output.model_copy(update={"sub_questions": sub_questions[:max_sub_questions]})
    return result.model_copy(update={"output": output})
