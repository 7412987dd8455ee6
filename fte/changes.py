"""What changed between two completed runs of one question: sources, claims, verdicts.

The comparison works on stored reports only, so it gives the same answer in the finalize
activity (a scheduled run against its predecessor) and in `fte schedule diff` (any two runs).

- Sources are matched by a hash of their passage text, whitespace-collapsed: a passage that
  was fetched again with the same text is not new, even under another run-scoped ID, and a
  passage whose text changed counts as one removed and one added.
- Claims are matched by their normalised text (case, quotes, whitespace and the final full
  stop folded). A claim only in the new run is new; a claim that was supported and is gone
  is no longer supported; a claim in both runs whose verdict differs has a changed verdict.
- The summary is one paragraph written from those facts in code, so it never claims a
  change that the lists do not show.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from fte.contracts import Contract, Verdict
from fte.text import collapse, normalise_quote

# How many items of each kind the summary names before it says "and N more".
_NAMED_IN_SUMMARY = 3


def content_hash(text: str) -> str:
    """The identity of a passage's text: SHA-256 of its whitespace-collapsed form, 16 hex."""
    return hashlib.sha256(collapse(text).encode("utf-8")).hexdigest()[:16]


def claim_key(text: str) -> str:
    """The identity of a claim: its text lower-cased, quotes and whitespace folded."""
    return normalise_quote(text).rstrip(" .")


class SourceRef(Contract):
    title: str
    location: str
    content_hash: str = Field(description="Hash of the passage text (`content_hash`).")


class ClaimRef(Contract):
    text: str
    verdict: Verdict


class VerdictChange(Contract):
    text: str
    before: Verdict
    after: Verdict


class Changes(Contract):
    """What a run found that its predecessor did not, and the other way round."""

    previous_task_id: str
    previous_finished_at: str | None = None
    previous_missing: bool = Field(
        default=False, description="The previous run's report is gone (purged): nothing compared."
    )
    sources_added: list[SourceRef] = Field(default_factory=list)
    sources_removed: list[SourceRef] = Field(default_factory=list)
    sources_unchanged: int = 0
    claims_new: list[ClaimRef] = Field(default_factory=list)
    claims_no_longer_supported: list[ClaimRef] = Field(default_factory=list)
    verdicts_changed: list[VerdictChange] = Field(default_factory=list)
    claims_unchanged: int = 0
    summary: str = ""

    @property
    def changed(self) -> bool:
        return bool(
            self.sources_added
            or self.sources_removed
            or self.claims_new
            or self.claims_no_longer_supported
            or self.verdicts_changed
        )


class ReportFacts(Contract):
    """The parts of a stored report that a comparison reads."""

    task_id: str
    finished_at: str | None = None
    sources: list[SourceRef]
    claims: list[ClaimRef]

    @classmethod
    def of(cls, report: Mapping[str, Any]) -> ReportFacts:
        """From a stored report document (`fte.report.Report` JSON).

        Reports written before sources carried a content hash fall back to the passage
        ID, which is stable for an unchanged corpus file.
        """
        sources = [
            SourceRef(
                title=str(s.get("title", "")),
                location=str(s.get("location", "")),
                content_hash=str(s.get("content_hash") or f"passage:{s.get('passage_id', '')}"),
            )
            for s in report.get("sources", [])
        ]
        claims = [
            ClaimRef(text=str(c["claim"]["text"]), verdict=c["verdict"])
            for c in report.get("claims", [])
        ]
        return cls(
            task_id=str(report["task_id"]),
            finished_at=report.get("finished_at"),
            sources=sources,
            claims=claims,
        )


def missing_previous(previous_task_id: str) -> Changes:
    return Changes(
        previous_task_id=previous_task_id,
        previous_missing=True,
        summary=f"The previous run {previous_task_id} has no stored report any more "
        "(purged?), so nothing was compared.",
    )


def _by_hash(sources: Iterable[SourceRef]) -> dict[str, SourceRef]:
    return {s.content_hash: s for s in sources}


def _by_claim(claims: Iterable[ClaimRef]) -> dict[str, ClaimRef]:
    # A claim stated twice counts once, with its best verdict.
    rank = {"supported": 0, "contradicted": 1, "unsupported": 2}
    out: dict[str, ClaimRef] = {}
    for claim in claims:
        key = claim_key(claim.text)
        if key not in out or rank[claim.verdict] < rank[out[key].verdict]:
            out[key] = claim
    return out


def compare(previous: ReportFacts, current: ReportFacts) -> Changes:
    """What `current` found that `previous` did not, and the other way round."""
    before, after = _by_hash(previous.sources), _by_hash(current.sources)
    old, new = _by_claim(previous.claims), _by_claim(current.claims)
    changes = Changes(
        previous_task_id=previous.task_id,
        previous_finished_at=previous.finished_at,
        sources_added=[s for h, s in after.items() if h not in before],
        sources_removed=[s for h, s in before.items() if h not in after],
        sources_unchanged=sum(1 for h in after if h in before),
        claims_new=[c for k, c in new.items() if k not in old],
        claims_no_longer_supported=[
            c for k, c in old.items() if k not in new and c.verdict == "supported"
        ],
        verdicts_changed=[
            VerdictChange(text=new[k].text, before=old[k].verdict, after=new[k].verdict)
            for k in new
            if k in old and old[k].verdict != new[k].verdict
        ],
        claims_unchanged=sum(1 for k in new if k in old and old[k].verdict == new[k].verdict),
    )
    changes.summary = summarise(changes)
    return changes


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _named(items: list[str]) -> str:
    shown = [f"“{item}”" for item in items[:_NAMED_IN_SUMMARY]]
    if len(items) > _NAMED_IN_SUMMARY:
        shown.append(f"{len(items) - _NAMED_IN_SUMMARY} more")
    return ", ".join(shown)


def _titles(sources: list[SourceRef]) -> list[str]:
    return list(dict.fromkeys(s.title or s.location for s in sources))


def summarise(changes: Changes) -> str:
    """One paragraph, written from the lists alone."""
    since = f"run {changes.previous_task_id}"
    if changes.previous_finished_at:
        since += f" (finished {changes.previous_finished_at})"
    if changes.previous_missing:
        return missing_previous(changes.previous_task_id).summary
    if not changes.changed:
        return (
            f"Nothing new since {since}: the same "
            f"{_count(changes.sources_unchanged, 'source passage')} and "
            f"{_count(changes.claims_unchanged, 'claim')}, with the same verdicts."
        )
    parts = []
    if changes.sources_added:
        parts.append(
            f"{_count(len(changes.sources_added), 'new source passage')} "
            f"(from {_named(_titles(changes.sources_added))})"
        )
    if changes.sources_removed:
        parts.append(
            f"{_count(len(changes.sources_removed), 'source passage')} no longer retrieved "
            f"(from {_named(_titles(changes.sources_removed))})"
        )
    if changes.claims_new:
        supported = sum(1 for c in changes.claims_new if c.verdict == "supported")
        parts.append(f"{_count(len(changes.claims_new), 'new claim')} ({supported} supported)")
    if changes.claims_no_longer_supported:
        parts.append(
            f"{_count(len(changes.claims_no_longer_supported), 'claim')} "
            "no longer supported: " + _named([c.text for c in changes.claims_no_longer_supported])
        )
    if changes.verdicts_changed:
        parts.append(
            f"{_count(len(changes.verdicts_changed), 'verdict')} changed ("
            + "; ".join(
                f"{v.before} → {v.after}" for v in changes.verdicts_changed[:_NAMED_IN_SUMMARY]
            )
            + ")"
        )
    unchanged = (
        f" Unchanged: {_count(changes.sources_unchanged, 'source passage')} and "
        f"{_count(changes.claims_unchanged, 'claim')}."
    )
    return f"Since {since}: " + "; ".join(parts) + "." + unchanged


def render_markdown(changes: Changes) -> list[str]:
    """The report section "What changed since <previous run>", as Markdown lines."""
    lines = [f"## What changed since {changes.previous_task_id}", "", changes.summary, ""]
    if changes.previous_missing or not changes.changed:
        return lines
    if changes.sources_added:
        lines += ["**New sources:**", ""]
        lines += [f"- {s.title} — `{s.location}`" for s in changes.sources_added]
        lines.append("")
    if changes.sources_removed:
        lines += ["**No longer retrieved:**", ""]
        lines += [f"- {s.title} — `{s.location}`" for s in changes.sources_removed]
        lines.append("")
    if changes.claims_new:
        lines += ["**New claims:**", ""]
        lines += [f"- {c.text} ({c.verdict})" for c in changes.claims_new]
        lines.append("")
    if changes.claims_no_longer_supported:
        lines += ["**No longer supported:**", ""]
        lines += [f"- {c.text}" for c in changes.claims_no_longer_supported]
        lines.append("")
    if changes.verdicts_changed:
        lines += ["**Verdict changed:**", ""]
        lines += [f"- {v.text} ({v.before} → {v.after})" for v in changes.verdicts_changed]
        lines.append("")
    return lines
