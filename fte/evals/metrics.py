"""The metric functions: pure, deterministic, and unit-tested on their own.

Retrieval is judged per page (document), not per passage: a question is answered by a
page, and several passages of one page are one find. Report metrics read the report JSON
that `fte report --format json` writes, so they judge exactly what a user gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fte.text import sentences, term_set


def share(part: float, whole: float) -> float:
    """`part / whole`, and 1.0 for an empty whole (nothing to get wrong, nothing wrong)."""
    return part / whole if whole else 1.0


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


# -- retrieval ---------------------------------------------------------------------------


def ranked_pages(locations: Iterable[str]) -> list[str]:
    """Pages in the order their first passage appears in a passage ranking."""
    return list(dict.fromkeys(locations))


def hit_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """1.0 if any relevant page is among the first `k`, else 0.0."""
    wanted = set(relevant)
    return 1.0 if any(page in wanted for page in ranked[:k]) else 0.0


def recall_at(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """The share of the relevant pages found among the first `k`."""
    wanted = set(relevant)
    return share(len(wanted & set(ranked[:k])), len(wanted))


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / the rank of the first relevant page; 0.0 if none was retrieved."""
    wanted = set(relevant)
    for rank, page in enumerate(ranked, 1):
        if page in wanted:
            return 1.0 / rank
    return 0.0


# -- reports -----------------------------------------------------------------------------


def _paragraphs(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [p for section in report["sections"] for p in section["paragraphs"]]


def grounded_text(report: Mapping[str, Any]) -> list[str]:
    """The report's paragraphs that state fact-checked claims: what key facts are looked for in.

    The summary and claim-less paragraphs (such as the offline writer's "Limits" notes, which
    quote unanswered sub-questions) are left out: they state nothing that was checked.
    """
    return [p["text"] for p in _paragraphs(report) if p["claim_ids"]]


def fact_found(alternatives: Sequence[Sequence[str]], texts: Iterable[str]) -> bool:
    """Whether one sentence of `texts` holds, for every group, one of its alternatives.

    An alternative is a word or a phrase; it matches when all its (stemmed) words are in the
    sentence, so "persisted" matches "persist" and "due time" matches "...its due time is...".
    """
    groups = [[term_set(a) for a in group] for group in alternatives]
    for text in texts:
        for sentence in sentences(text) or []:
            found = sentence.terms
            if all(any(alt and alt <= found for alt in group) for group in groups):
                return True
    return False


def citations(report: Mapping[str, Any]) -> list[str]:
    """Every source ID cited by a paragraph of the report, repeats included."""
    return [s for p in _paragraphs(report) for s in p["source_ids"]]


def citation_validity(report: Mapping[str, Any], corpus_passages: set[str]) -> float:
    """The share of citations that name a source the run retrieved, whose passage is real.

    Real: its passage ID is one the corpus index holds, so the cited text exists in a file.
    """
    sources = {s["id"]: s for s in report["sources"]}
    cited = citations(report)
    valid = [s for s in cited if s in sources and sources[s]["passage_id"] in corpus_passages]
    return share(len(valid), len(cited))


def supported_claim_share(report: Mapping[str, Any]) -> float:
    """The share of the analyst's claims that the fact check supported."""
    claims = report["claims"]
    return share(sum(c["verdict"] == "supported" for c in claims), len(claims))


def sub_question_coverage(report: Mapping[str, Any]) -> float:
    """The share of planned sub-questions answered by a supported claim the report states."""
    stated = {cid for p in _paragraphs(report) for cid in p["claim_ids"]}
    answered = {
        c["claim"]["sub_question_id"]
        for c in report["claims"]
        if c["verdict"] == "supported" and c["claim"]["id"] in stated
    }
    planned = [q["id"] for q in report["sub_questions"]]
    return share(sum(q in answered for q in planned), len(planned))
