"""The report's rounds, remaining gaps and budget note, in JSON and in Markdown."""

from __future__ import annotations

from fte.contracts import (
    AgentModels,
    CitationIntegrity,
    Gap,
    RoundReport,
    Spend,
    TokenUsage,
)
from fte.report import Report, render_markdown

GAPS = [
    Gap(id="g1.1", kind="unanswered", question="How loud are <b>heat pumps</b>?"),
    Gap(id="g1.2", kind="contradicted", question="Defrosting halves output.", claim_id="C2"),
    Gap(id="g1.3", kind="follow_up", question="How is COP measured?"),
]


def report(**fields: object) -> Report:
    base: dict[str, object] = {
        "task_id": "t", "query": "q", "title": "T", "summary": "S", "sections": [],
        "sources": [], "sub_questions": [], "plan_rationale": "", "claims": [],
        "integrity": CitationIntegrity(policy="remove"), "usage_by_agent": {},
        "usage_total": TokenUsage(), "stage_seconds": {}, "models": AgentModels(),
        "started_at": "", "finished_at": "",
    }  # fmt: skip
    return Report.model_validate({**base, **fields})


def test_rounds_and_remaining_gaps_come_before_the_sources() -> None:
    rounds = [
        RoundReport(
            round=1,
            state="done",
            looked_for=GAPS[:2],
            sources_found=["S6"],
            claims_added=["C7", "C8"],
            supported_added=1,
        ),
        RoundReport(round=2, state="done", note="nothing left to look for"),
    ]
    markdown = render_markdown(report(rounds=rounds, remaining_gaps=GAPS))
    body = markdown[: markdown.index("## Sources")]
    assert (
        "## Research rounds\n\n"
        "- Round 1 looked for 2 gaps, found 1 new source and added 2 claims (1 supported).\n"
        "- Round 2 looked for 0 gaps, found 0 new sources and added 0 claims (0 supported). "
        "(nothing left to look for)\n"
    ) in body
    assert (
        "## Remaining gaps\n\n"
        "- Unanswered: How loud are &lt;b&gt;heat pumps&lt;/b&gt;?\n"
        "- Contradicted claim: Defrosting halves output.\n"
        "- Follow-up: How is COP measured?\n"
    ) in body


def test_the_budget_says_it_ended_the_research() -> None:
    note = "the budget ended the research: round 1 searched 1 of 2 gaps (spent 900 of 1,000 tokens)"
    spend = Spend(tokens=900, usd=None, max_tokens=1000, stopped=note)
    markdown = render_markdown(report(rounds=[RoundReport(round=1)], spend=spend))
    assert "**The budget ended the research: round 1 searched 1 of 2 gaps" in markdown
    assert report(spend=spend).model_dump(mode="json")["spend"]["stopped"] == note


def test_a_one_pass_report_has_no_rounds_section() -> None:
    markdown = render_markdown(report())
    assert "## Research rounds" not in markdown and "## Remaining gaps" not in markdown


def test_the_html_report_shows_rounds_the_budget_and_remaining_gaps() -> None:
    from fte.html_report import render_html

    note = "the budget ended the research: round 2 was not started (spent 9 of 10 tokens)"
    document = report(
        rounds=[RoundReport(round=1, looked_for=GAPS[:1], claims_added=["C3"])],
        remaining_gaps=GAPS,
        spend=Spend(tokens=9, max_tokens=10, stopped=note),
    ).model_dump(mode="json")
    page = render_html(document)
    assert "<h2>Research rounds</h2>" in page
    assert "Round 1 looked for 1 gap, found 0 new sources and added 1 claim" in page
    assert "The budget ended the research: round 2 was not started" in page
    assert "<li>Unanswered: How loud are &lt;b&gt;heat pumps&lt;/b&gt;?</li>" in page
    assert "Research rounds" not in render_html(report().model_dump(mode="json"))
