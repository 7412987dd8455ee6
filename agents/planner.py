"""Planner: splits a research query into sub-questions that sources can answer one by one."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fte.agents import phrasing
from fte.agents.agent import Agent
from fte.contracts import MAX_SUB_QUESTIONS, MIN_SUB_QUESTIONS, Contract, SubQuestion
from fte.text import ordered_unique


class PlannerInput(Contract):
    """The research question and how many sub-questions it may be split into."""

    query: str
    max_sub_questions: int = Field(ge=MIN_SUB_QUESTIONS, le=MAX_SUB_QUESTIONS)


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


class Plan(Contract):
    """The checked plan: numbered sub-questions within the run's cap."""

    sub_questions: list[SubQuestion]
    rationale: str


def rules(inputs: PlannerInput, output: PlannerOutput) -> Plan:
    # The schema knows only the hard cap; a smaller cap lives in the prompt, so enforce it
    # here. The prompt asks for most-important-first, so truncating keeps the best ones.
    texts = [t.strip() for t in output.sub_questions if t.strip()][: inputs.max_sub_questions]
    return Plan(sub_questions=SubQuestion.numbered(texts), rationale=output.rationale)


def offline(inputs: PlannerInput) -> PlannerOutput:
    """Template questions around the query's subject, focus and comparison."""
    analysis = phrasing.analyse_query(inputs.query)
    questions = phrasing.ordered_unique_questions(phrasing.facet_questions(inputs.query, analysis))
    terms = [analysis.subject, *(analysis.compared or ()), *analysis.others]
    if analysis.focus:
        terms.append(analysis.focus)
    rationale = (
        "Offline extractive planner (no language model is configured): it took the key terms "
        f"of the question ({', '.join(repr(t) for t in ordered_unique(terms) if t)}) and "
        "combined them with standard research facets: definition, mechanism, trade-offs and "
        "limits, failure modes, and practice. The sub-questions come from templates, so they "
        "cover the usual angles of a technical topic rather than this question's own nuances."
    )
    return PlannerOutput(sub_questions=questions[: inputs.max_sub_questions], rationale=rationale)


AGENT = Agent(
    name="planner",
    prompt="planner",
    input_model=PlannerInput,
    output_model=PlannerOutput,
    result_model=Plan,
    rules=rules,
    offline=offline,
)
