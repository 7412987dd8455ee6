"""Writer: turns fact-checked claims into a structured report that cites sources by ID."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fte.agents.prompting import load_prompt, render
from fte.contracts import CheckedClaim, Source, SubQuestion
from fte.llm import LLMClient, LLMResult

PROMPT_NAME = "writer"
AGENT = "writer"


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


def write(
    llm: LLMClient,
    *,
    model: str,
    query: str,
    claims: list[CheckedClaim],
    sources: list[Source],
    sub_questions: list[SubQuestion] | None = None,
) -> LLMResult[WriterOutput]:
    """Draft the report from the checked claims.

    `sub_questions` is the plan in its order, which the claims refer to by ID, so the report
    can follow the plan; without it the prompt says "(none)" and sections follow themes alone.
    """
    system, user = load_prompt(PROMPT_NAME)
    return llm.structured(
        agent=AGENT,
        model=model,
        system=system,
        user=render(
            user,
            query=query.strip(),
            sub_questions=_format_sub_questions(sub_questions or []),
            claims=_format_claims(claims),
            sources=_format_sources(sources),
        ),
        output_model=WriterOutput,
    )


def _format_sub_questions(sub_questions: list[SubQuestion]) -> str:
    # The analyst's layout, so both agents show the plan the same way.
    return "\n".join(f"- {q.id}: {q.text}" for q in sub_questions) or "(none)"


def _format_claims(claims: list[CheckedClaim]) -> str:
    blocks = []
    for checked in claims:
        claim = checked.claim
        evidence = ""
        if checked.evidence:
            origin = f" from {checked.evidence_source_id}" if checked.evidence_source_id else ""
            evidence = f'\nevidence{origin}: "{checked.evidence}"'
        blocks.append(
            f'<claim id="{claim.id}" verdict="{checked.verdict}" '
            f'sources="{", ".join(claim.source_ids)}" '
            f'sub_question="{claim.sub_question_id or ""}">\n'
            f"{claim.text.strip()}{evidence}\n"
            "</claim>"
        )
    return "\n\n".join(blocks) or "(no claims)"


def _format_sources(sources: list[Source]) -> str:
    return "\n".join(f"- {s.id}: {s.title} ({s.location})" for s in sources) or "(no sources)"
