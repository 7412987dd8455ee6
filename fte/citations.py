"""Citation integrity, checked in code rather than trusted to the model.

Before a run completes, every paragraph of the writer's draft is checked:

* each cited source ID must name a source that was actually retrieved in this run and that
  backs what the paragraph states: a source of one of its claims, or, for a paragraph that
  names no claim, of some supported claim (the sources the writer was shown). A retrieved
  passage behind no stated claim is as unverifiable a citation as an invented ID;
* each claim the paragraph states must have been judged `supported` by the fact-checker.

Under the `remove` policy a citation of an unknown source is dropped, and a paragraph
that states an unsupported claim (or is left with no valid citation) is dropped. Under
`mark` both stay in the report, visibly flagged. Either way the counts go into the
run's result.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import Field

from fte.contracts import CheckedClaim, CitationIntegrity, CitationPolicy, Contract, Source


class CheckedParagraph(Contract):
    text: str
    claim_ids: list[str]
    source_ids: list[str] = Field(description="Only IDs of retrieved sources.")
    unknown_source_ids: list[str] = Field(default_factory=list)
    unsupported_claim_ids: list[str] = Field(default_factory=list)


class CheckedSection(Contract):
    heading: str
    paragraphs: list[CheckedParagraph]


class DraftParagraph(Contract):
    text: str
    claim_ids: list[str] = Field(default_factory=list)
    source_ids: list[str] = Field(default_factory=list)


class DraftSection(Contract):
    heading: str
    paragraphs: list[DraftParagraph]


def verify_citations(
    sections: Iterable[DraftSection],
    *,
    sources: Iterable[Source],
    checked: Iterable[CheckedClaim],
    policy: CitationPolicy,
) -> tuple[list[CheckedSection], CitationIntegrity]:
    known_sources = {s.id for s in sources}
    checked = list(checked)
    claim_sources = {c.claim.id: set(c.claim.source_ids) & known_sources for c in checked}
    supported = {c.claim.id for c in checked if c.verdict == "supported"}
    shown = {s for claim in supported for s in claim_sources[claim]}
    integrity = CitationIntegrity(policy=policy)
    result: list[CheckedSection] = []

    for section in sections:
        kept: list[CheckedParagraph] = []
        for paragraph in section.paragraphs:
            cited = list(dict.fromkeys(paragraph.source_ids))  # de-duplicate, keep order
            claims = list(dict.fromkeys(paragraph.claim_ids))
            stated = [c for c in claims if c in claim_sources]
            backing = set().union(*(claim_sources[c] for c in stated)) if stated else shown
            valid = [s for s in cited if s in backing]
            unknown = [s for s in cited if s not in backing]
            unsupported = [c for c in claims if c not in supported]
            integrity.citations_checked += len(cited)
            integrity.unknown_sources += len(unknown)
            integrity.unsupported_claims += len(unsupported)

            if policy == "remove":
                integrity.citations_removed += len(unknown)
                # A paragraph that lost every citation, or states something the
                # fact-checker did not support, cannot stay in a cited report.
                if unsupported or (cited and not valid):
                    integrity.paragraphs_removed += 1
                    continue
                kept.append(
                    CheckedParagraph(text=paragraph.text, claim_ids=claims, source_ids=valid)
                )
            else:
                if unknown or unsupported:
                    integrity.marked += 1
                kept.append(
                    CheckedParagraph(
                        text=paragraph.text,
                        claim_ids=claims,
                        source_ids=valid,
                        unknown_source_ids=unknown,
                        unsupported_claim_ids=unsupported,
                    )
                )
        if kept:
            result.append(CheckedSection(heading=section.heading, paragraphs=kept))
    return result, integrity
