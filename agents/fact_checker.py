"""Fact checker: judges each claim strictly against the passages the claim cites."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fte.agents.prompting import load_prompt, render, source_block
from fte.contracts import Claim, Source
from fte.llm import LLMClient, LLMResult

PROMPT_NAME = "fact_checker"
AGENT = "fact_checker"


class ClaimVerdict(BaseModel):
    """The verdict on one claim, with the quote that decides it."""

    claim_id: str = Field(description="ID of the claim being judged, e.g. 'C4'.")
    verdict: Literal["supported", "unsupported", "contradicted"] = Field(
        description=(
            "'supported': a cited passage states it; 'contradicted': a cited passage states "
            "the opposite or different figures; 'unsupported': the cited passages do not say."
        )
    )
    evidence: str = Field(
        default="",
        description=(
            "A verbatim quote, copied exactly from one cited passage, that decides the "
            "verdict; '' when the verdict is 'unsupported'."
        ),
    )
    evidence_source_id: str | None = Field(
        default=None,
        description="ID of the source the evidence quote comes from; null when there is none.",
    )


class FactCheckOutput(BaseModel):
    """One verdict per claim, in the order the claims were given."""

    verdicts: list[ClaimVerdict] = Field(description="Exactly one verdict for every claim.")


def check(
    llm: LLMClient, *, model: str, claims: list[Claim], sources: list[Source]
) -> LLMResult[FactCheckOutput]:
    system, user = load_prompt(PROMPT_NAME)
    return llm.structured(
        agent=AGENT,
        model=model,
        system=system,
        user=render(user, claims=_format_claims(claims, sources)),
        output_model=FactCheckOutput,
    )


def _format_claims(claims: list[Claim], sources: list[Source]) -> str:
    """Each claim followed by only the passages it cites.

    Showing a claim next to its own citations, rather than one shared pool of sources, is
    what keeps the model from "supporting" a claim with a passage the claim never cited.
    """
    by_id = {source.id: source for source in sources}
    blocks = []
    for claim in claims:
        cited = [
            source_block(by_id[source_id])
            if source_id in by_id
            else f'<source id="{source_id}">\n(not available: judge without it)\n</source>'
            for source_id in claim.source_ids
        ]
        blocks.append(
            f'<claim id="{claim.id}">\n{claim.text.strip()}\n</claim>\n'
            f"Cited passages for {claim.id}:\n" + ("\n".join(cited) or "(none)")
        )
    return "\n\n".join(blocks) or "(no claims)"
