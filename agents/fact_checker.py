"""Fact checker: judges each claim strictly against the passages the claim cites."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fte.agents.agent import Agent
from fte.contracts import CheckedClaim, Claim, Contract, QuotedSource
from fte.text import NEGATION, NUMBER, coverage, normalise_quote, sentences, term_set

# Offline: the share of a claim's words a cited sentence must contain to decide it.
OFFLINE_MIN_OVERLAP = 0.6
# A quote restates a claim when each holds this share of the other's words.
RESTATES_MIN_OVERLAP = 0.9


class ClaimToCheck(Contract):
    """A claim shown next to only the passages it cites.

    Showing a claim with its own citations, rather than one shared pool of sources, is
    what keeps the model from "supporting" a claim with a passage the claim never cited.
    """

    id: str
    text: str
    sub_question_id: str | None = None
    cited_sources: list[QuotedSource]


class FactCheckInput(Contract):
    claims: list[ClaimToCheck]


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


class FactCheck(Contract):
    """Every claim with the verdict that survived the code-side evidence check."""

    checked: list[CheckedClaim]


def claims_to_check(claims: list[Claim], sources: list[QuotedSource]) -> FactCheckInput:
    """The fact checker's input: each claim with the retrieved sources it cites."""
    by_id = {source.id: source for source in sources}
    return FactCheckInput(
        claims=[
            ClaimToCheck(
                id=claim.id,
                text=claim.text,
                sub_question_id=claim.sub_question_id,
                cited_sources=[by_id[s] for s in claim.source_ids if s in by_id],
            )
            for claim in claims
        ]
    )


def rules(inputs: FactCheckInput, output: FactCheckOutput) -> FactCheck:
    """A claim the model skipped is unsupported; "supported" needs a real quote that agrees.

    Two judgements are the code's, not the model's: a quote that restates the claim with
    the opposite polarity or with other figures cannot support it, and a claim that one of
    its cited passages states word for word is supported whatever the model says, unless
    another cited passage contradicts it.
    """
    verdicts = {v.claim_id: v for v in output.verdicts}
    checked: list[CheckedClaim] = []
    for item in inputs.claims:
        texts = {s.id: normalise_quote(s.text) for s in item.cited_sources}
        claim = Claim(
            id=item.id,
            text=item.text,
            source_ids=[s.id for s in item.cited_sources],
            sub_question_id=item.sub_question_id,
        )
        v = verdicts.get(item.id) or ClaimVerdict(claim_id=item.id, verdict="unsupported")
        verdict, evidence = v.verdict, v.evidence
        evidence_source = v.evidence_source_id if v.evidence_source_id in texts else None
        if verdict == "supported":
            # "Supported" must rest on a quote that really is in one of the claim's own
            # sources; otherwise the model's judgement is not evidence.
            quote = normalise_quote(v.evidence)
            holders = [s for s, text in texts.items() if quote and quote in text]
            if not holders or disagrees(item.text, v.evidence):
                # Nor is its quote: the report would show it as a passage of a source.
                verdict, evidence, evidence_source = "unsupported", "", None
            elif evidence_source not in holders:
                evidence_source = holders[0]
        # A passage that states the claim word for word supports it; only another passage
        # can contradict it.
        stating = [s for s, text in texts.items() if normalise_quote(item.text) in text]
        overruled = verdict == "unsupported" or (
            verdict == "contradicted" and evidence_source in stating
        )
        if stating and overruled:
            verdict, evidence, evidence_source = "supported", item.text, stating[0]
        checked.append(
            CheckedClaim(
                claim=claim,
                verdict=verdict,
                evidence=evidence,
                evidence_source_id=evidence_source,
            )
        )
    return FactCheck(checked=checked)


def disagrees(claim: str, quote: str) -> bool:
    """Whether `quote` restates `claim` with the opposite polarity or with other figures.

    Polarity counts only when the two say nearly the same words (a quote that mentions
    "never" about something else says nothing about the claim's polarity); figures count
    when each has one the other lacks, so a partial quote with fewer numbers still agrees.
    """
    claim_terms, quote_terms = term_set(claim), term_set(quote)
    restates = (
        coverage(claim_terms, quote_terms) >= RESTATES_MIN_OVERLAP
        and coverage(quote_terms, claim_terms) >= RESTATES_MIN_OVERLAP
    )
    polarity = (NEGATION.search(claim) is None) != (NEGATION.search(quote) is None)
    claim_numbers, quote_numbers = set(NUMBER.findall(claim)), set(NUMBER.findall(quote))
    figures = bool(claim_numbers - quote_numbers) and bool(quote_numbers - claim_numbers)
    related = coverage(claim_terms, quote_terms) >= OFFLINE_MIN_OVERLAP
    return (restates and polarity) or (related and figures)


def without_quotes(result: FactCheck) -> FactCheck:
    """The verdicts without their quotes: the coordinator decides on verdicts, and the
    report takes the quotes from the stored fact check."""
    return FactCheck(checked=[c.model_copy(update={"evidence": ""}) for c in result.checked])


def offline(inputs: FactCheckInput) -> FactCheckOutput:
    return FactCheckOutput(verdicts=[_verdict(claim) for claim in inputs.claims])


def _verdict(claim: ClaimToCheck) -> ClaimVerdict:
    """The cited sentence closest to the claim decides; a negation or number clash contradicts."""
    wanted = term_set(claim.text)
    claim_negated = NEGATION.search(claim.text) is not None
    claim_numbers = set(NUMBER.findall(claim.text))
    best: tuple[float, bool, int] | None = None
    best_evidence = ("", "")
    order = 0
    for source in claim.cited_sources:
        for sentence in sentences(source.text):
            order += 1
            overlap = coverage(wanted, sentence.terms)
            numbers = set(NUMBER.findall(sentence.raw))
            clashes = (NEGATION.search(sentence.raw) is not None) != claim_negated or bool(
                numbers and claim_numbers - numbers
            )
            # Highest overlap first; on a tie prefer the sentence that agrees, then the first.
            key = (overlap, not clashes, -order)
            if best is None or key > best:
                best, best_evidence = key, (sentence.raw, source.id)
    if best is None or best[0] < OFFLINE_MIN_OVERLAP:
        return ClaimVerdict(claim_id=claim.id, verdict="unsupported")
    evidence, source_id = best_evidence
    return ClaimVerdict(
        claim_id=claim.id,
        verdict="supported" if best[1] else "contradicted",
        evidence=evidence,
        evidence_source_id=source_id,
    )


AGENT = Agent(
    name="fact_checker",
    prompt="fact_checker",
    input_model=FactCheckInput,
    output_model=FactCheckOutput,
    result_model=FactCheck,
    rules=rules,
    offline=offline,
    brief=without_quotes,
)
