"""Numbering of citations in the rendered report."""

from __future__ import annotations

import re

from fte.citations import CheckedParagraph, CheckedSection
from fte.contracts import AgentModels, CitationIntegrity, Source, TokenUsage
from fte.report import Report, number_sources, render_markdown


def _source(source_id: str, location: str) -> Source:
    return Source(
        id=source_id,
        passage_id=f"p-{source_id}",
        title=location.rsplit("/", 1)[-1],
        location=location,
        text="text",
        retrieved_at="2026-11-25T00:00:00+00:00",
        sub_question_id="q1",
    )


def test_passages_of_one_document_share_a_number_and_one_list_entry() -> None:
    sources = [
        _source("S1", "docs/a.md"),
        _source("S2", "docs/b.md"),
        _source("S3", "docs/a.md"),  # a second passage of a.md
        _source("S4", "docs/c.md"),  # never cited
        _source("S5", "docs/c.md"),
    ]
    sections = [
        CheckedSection(
            heading="H",
            paragraphs=[
                CheckedParagraph(text="One.", claim_ids=[], source_ids=["S2", "S1", "S3"]),
                CheckedParagraph(text="Two.", claim_ids=[], source_ids=["S3"]),
            ],
        )
    ]
    numbered = number_sources(sections, sources)
    assert {s.id: s.number for s in numbered} == {
        "S1": 2, "S2": 1, "S3": 2, "S4": None, "S5": None,
    }  # fmt: skip

    report = Report(
        task_id="t", query="q", title="T", summary="S", sections=sections, sources=numbered,
        sub_questions=[], plan_rationale="", claims=[],
        integrity=CitationIntegrity(policy="remove"), usage_by_agent={},
        usage_total=TokenUsage(), stage_seconds={}, models=AgentModels(),
        started_at="", finished_at="",
    )  # fmt: skip
    markdown = render_markdown(report)
    assert "One. [1][2]" in markdown and "Two. [2]" in markdown
    assert re.findall(r"^(\d+)\. (\S+)", markdown, re.MULTILINE) == [("1", "b.md"), ("2", "a.md")]
    assert markdown.count("docs/c.md") == 1  # the uncited document, listed once


def test_the_sources_list_shows_where_in_each_document_the_cited_passages_are() -> None:
    sources = [
        _source("S1", "docs/guide.md").model_copy(update={"section": "Install › On Linux"}),
        _source("S2", "docs/guide.md").model_copy(update={"section": "Configure"}),
        _source("S3", "docs/paper.pdf").model_copy(update={"page": 7}),
        _source("S4", "docs/plain.txt"),
    ]
    sections = [
        CheckedSection(
            heading="H",
            paragraphs=[
                CheckedParagraph(text="One.", claim_ids=[], source_ids=["S1", "S2", "S3", "S4"])
            ],
        )
    ]
    numbered = number_sources(sections, sources)
    assert [(s.section, s.page) for s in numbered] == [
        ("Install › On Linux", None), ("Configure", None), ("", 7), ("", None),
    ]  # fmt: skip
    report = Report(
        task_id="t", query="q", title="T", summary="S", sections=sections, sources=numbered,
        sub_questions=[], plan_rationale="", claims=[],
        integrity=CitationIntegrity(policy="remove"), usage_by_agent={},
        usage_total=TokenUsage(), stage_seconds={}, models=AgentModels(),
        started_at="", finished_at="",
    )  # fmt: skip
    listed = [line for line in render_markdown(report).splitlines() if re.match(r"\d+\. ", line)]
    assert "`docs/guide.md` at § Install › On Linux; § Configure (retrieved" in listed[0]
    assert "`docs/paper.pdf` at p. 7 (retrieved" in listed[1]
    assert "`docs/plain.txt` (retrieved" in listed[2]
