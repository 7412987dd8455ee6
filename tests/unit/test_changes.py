"""What changed between two reports: sources by content hash, claims by normalised text."""

from __future__ import annotations

from typing import Any

from fte.changes import (
    ClaimRef,
    ReportFacts,
    SourceRef,
    compare,
    content_hash,
    missing_previous,
    render_markdown,
)
from fte.html_report import render_html
from fte.report import render_markdown as report_markdown
from tests.unit.test_html_report import build_report, stored


def source(text: str, title: str = "Doc") -> SourceRef:
    return SourceRef(title=title, location=f"/corpus/{title}.md", content_hash=content_hash(text))


def facts(task_id: str, sources: list[SourceRef], claims: list[tuple[str, str]]) -> ReportFacts:
    return ReportFacts(
        task_id=task_id,
        finished_at="2030-01-01T00:00:00+00:00",
        sources=sources,
        claims=[ClaimRef.model_validate({"text": t, "verdict": v}) for t, v in claims],
    )


def test_content_hash_ignores_whitespace_but_not_words() -> None:
    assert content_hash("Timers  fire\nafter a restart.") == content_hash(
        "Timers fire after a restart."
    )
    assert content_hash("Timers fire after a restart.") != content_hash(
        "Timers fire before a restart."
    )


def test_identical_runs_say_nothing_changed_plainly() -> None:
    a = facts("r1", [source("alpha"), source("beta")], [("Timers persist.", "supported")])
    # Re-fetched: same texts (whitespace differs), claims differ only in case and full stop.
    b = facts("r2", [source("alpha "), source(" beta")], [("timers persist", "supported")])
    changes = compare(a, b)
    assert not changes.changed
    assert changes.sources_unchanged == 2 and changes.claims_unchanged == 1
    assert changes.summary.startswith("Nothing new since run r1")
    assert "the same 2 source passages and 1 claim" in changes.summary
    assert render_markdown(changes)[0] == "## What changed since r1"


def test_sources_added_and_removed_by_content() -> None:
    a = facts("r1", [source("old text", "Old"), source("kept", "Kept")], [])
    b = facts("r2", [source("kept", "Kept"), source("new text", "New")], [])
    changes = compare(a, b)
    assert [s.title for s in changes.sources_added] == ["New"]
    assert [s.title for s in changes.sources_removed] == ["Old"]
    assert changes.sources_unchanged == 1
    assert "1 new source passage (from “New”)" in changes.summary
    assert "1 source passage no longer retrieved (from “Old”)" in changes.summary


def test_claims_new_no_longer_supported_and_verdict_changed_are_disjoint() -> None:
    a = facts(
        "r1",
        [],
        [
            ("Timers persist.", "supported"),
            ("Retries back off.", "supported"),
            ("Gates wait.", "unsupported"),
            ("Ghost claim.", "unsupported"),
        ],
    )
    b = facts(
        "r2",
        [],
        [
            ("Timers persist.", "supported"),
            ("Gates wait.", "supported"),
            ("Compensation reverses steps.", "supported"),
        ],
    )
    changes = compare(a, b)
    assert [c.text for c in changes.claims_new] == ["Compensation reverses steps."]
    assert [c.text for c in changes.claims_no_longer_supported] == ["Retries back off."]
    assert [(v.text, v.before, v.after) for v in changes.verdicts_changed] == [
        ("Gates wait.", "unsupported", "supported")
    ]
    assert changes.claims_unchanged == 1
    assert changes.changed
    assert "1 new claim (1 supported)" in changes.summary
    assert "1 claim no longer supported: “Retries back off.”" in changes.summary
    assert "1 verdict changed (unsupported → supported)" in changes.summary
    lines = render_markdown(changes)
    assert "**Verdict changed:**" in lines and "- Gates wait. (unsupported → supported)" in lines


def test_report_documents_are_read_with_a_passage_id_fallback() -> None:
    report: dict[str, Any] = {
        "task_id": "r1",
        "finished_at": "2030-01-01T00:00:00+00:00",
        "sources": [
            {"title": "A", "location": "/a.md", "passage_id": "a#1", "content_hash": "abc"},
            {"title": "B", "location": "/b.md", "passage_id": "b#1"},  # an older report
        ],
        "claims": [{"claim": {"text": "X is Y."}, "verdict": "supported"}],
    }
    read = ReportFacts.of(report)
    assert [s.content_hash for s in read.sources] == ["abc", "passage:b#1"]
    assert read.claims == [ClaimRef(text="X is Y.", verdict="supported")]


def test_a_purged_previous_report_is_said_so() -> None:
    changes = missing_previous("r0")
    assert changes.previous_missing and not changes.changed
    assert "r0 has no stored report any more" in changes.summary
    assert render_markdown(changes)[2] == changes.summary


def test_reports_open_with_what_changed_in_markdown_html_and_json() -> None:
    report = build_report()
    before = ReportFacts.of(stored(report)).model_copy(update={"task_id": "r0"})
    after = ReportFacts.of(stored(report))
    hostile = ClaimRef(text="<script>alert(1)</script> is new.", verdict="supported")
    report.changes = compare(before, after.model_copy(update={"claims": [hostile]}))
    document = stored(report)
    assert document["changes"]["previous_task_id"] == "r0"
    assert document["changes"]["claims_new"] == [hostile.model_dump()]
    markdown = report_markdown(report)
    assert "## What changed since r0" in markdown
    assert markdown.index("## What changed since r0") < markdown.index("## Sources")
    page = render_html(document)
    assert '<section id="changes">' in page and "What changed since <code>r0</code>" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    # Every source passage carries the hash the comparison matches on.
    assert all(s["content_hash"] for s in document["sources"])
