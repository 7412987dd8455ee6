"""The code-side citation check at finalize: which citations and paragraphs survive."""

from __future__ import annotations

from fte.citations import DraftParagraph, DraftSection, verify_citations
from fte.contracts import CheckedClaim, Claim, Source, Verdict

SOURCES = [
    Source(
        id=f"S{n}",
        passage_id=f"p{n}",
        title="t",
        location=f"doc{n}.md",
        text="text",
        retrieved_at="2030-01-01T00:00:00+00:00",
        sub_question_id="q1",
    )
    for n in (1, 2, 3)
]


def _checked(claim_id: str, sources: list[str], verdict: Verdict = "supported") -> CheckedClaim:
    claim = Claim(id=claim_id, text=f"claim {claim_id}", source_ids=sources)
    return CheckedClaim(claim=claim, verdict=verdict, evidence="")


# C1 rests on S1; C2 on S2; C3 (unsupported) on S3: S3 was retrieved but never shown to the writer.
CHECKED = [_checked("C1", ["S1"]), _checked("C2", ["S2"]), _checked("C3", ["S3"], "unsupported")]


def _verify(
    *paragraphs: DraftParagraph, policy: str = "remove"
) -> tuple[list[str], dict[str, int]]:
    sections, integrity = verify_citations(
        [DraftSection(heading="h", paragraphs=list(paragraphs))],
        sources=SOURCES,
        checked=CHECKED,
        policy="remove" if policy == "remove" else "mark",
    )
    kept = [f"{p.text}:{','.join(p.source_ids)}" for s in sections for p in s.paragraphs]
    return kept, integrity.model_dump(exclude={"policy"})


def test_a_paragraph_cites_only_the_sources_of_its_claims() -> None:
    kept, counts = _verify(DraftParagraph(text="a", claim_ids=["C1"], source_ids=["S1", "S2"]))
    assert kept == ["a:S1"]
    assert counts["unknown_sources"] == 1 and counts["citations_removed"] == 1


def test_a_retrieved_passage_never_shown_to_the_writer_is_not_citable() -> None:
    kept, counts = _verify(
        DraftParagraph(text="a", claim_ids=["C1"], source_ids=["S3"]),
        DraftParagraph(text="b", claim_ids=[], source_ids=["S3"]),
        DraftParagraph(text="c", claim_ids=[], source_ids=["S2"]),
    )
    assert kept == ["c:S2"]
    assert counts["unknown_sources"] == 2 and counts["paragraphs_removed"] == 2


def test_unknown_ids_and_unsupported_claims() -> None:
    kept, counts = _verify(
        DraftParagraph(text="a", claim_ids=["C1"], source_ids=["S1", "S99"]),
        DraftParagraph(text="b", claim_ids=["C3"], source_ids=["S3"]),
        DraftParagraph(text="c", claim_ids=[], source_ids=[]),
    )
    assert kept == ["a:S1", "c:"]
    assert counts["unknown_sources"] == 1 and counts["unsupported_claims"] == 1


def test_mark_keeps_what_remove_drops() -> None:
    kept, counts = _verify(
        DraftParagraph(text="a", claim_ids=["C1"], source_ids=["S3"]), policy="mark"
    )
    assert kept == ["a:"] and counts["marked"] == 1
