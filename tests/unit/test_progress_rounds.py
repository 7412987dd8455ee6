"""Live progress of a run with rounds and a budget: `fte status` lines and the `watch` panel."""

from __future__ import annotations

from rich.console import Console

from fte.client import Snapshot
from fte.contracts import Gap, Progress, RoundReport, Spend, TokenUsage
from fte.progress_view import panel, summary_line

NOTE = "the budget ended the research: round 1 searched 1 of 2 gaps (spent 900 of 1,500 tokens)"


def snapshot(**fields: object) -> Snapshot:
    base: dict[str, object] = {
        "task_id": "r1",
        "query": "How do heat pumps work?",
        "stage": "finding_sources",
        "started_at": "2030-01-01T00:00:00+00:00",
        "updated_at": "2030-01-01T00:01:00+00:00",
        "usage": TokenUsage(prompt_tokens=1000, completion_tokens=320, calls=11),
        "depth": 2,
        "round": 1,
        "rounds": [
            RoundReport(
                round=1,
                state="searching",
                looked_for=[Gap(id="g1.1", kind="unanswered", question="Why?")],
            )
        ],
        "spend": Spend(tokens=1320, usd=0.0002, max_tokens=1500, budget_usd=0.01),
    }
    progress = Progress.model_validate({**base, **fields})
    return Snapshot("r1", "RUNNING", progress, None, None)


def rendered(snap: Snapshot) -> str:
    console = Console(width=200, record=True)
    console.print(panel(snap))
    return console.export_text()


def test_status_line_shows_the_round_and_spend_against_the_budget() -> None:
    line = summary_line(snapshot())
    assert "round 1/2" in line
    assert "spent 1,320 of 1,500 tokens, $0.0002 of $0.0100" in line


def test_the_first_pass_shows_no_round_yet() -> None:
    assert "round" not in summary_line(snapshot(round=0, rounds=[], stage="planning"))


def test_watch_panel_lists_rounds_and_the_budget() -> None:
    text = rendered(snapshot())
    assert "round 1/2 searching: looked for 1 gap, found 0 sources, added 0 claims" in text
    assert "budget: spent 1,320 of 1,500 tokens, $0.0002 of $0.0100" in text


def test_a_run_the_budget_stopped_shows_why() -> None:
    stopped = Spend(tokens=900, max_tokens=1500, stopped=NOTE)
    snap = snapshot(stage="completed", reason=NOTE, spend=stopped)
    assert f"reason: {NOTE}" in summary_line(snap)
    assert f"reason: {NOTE}" in rendered(snap)


def test_a_one_pass_run_without_budget_shows_neither() -> None:
    line = summary_line(snapshot(depth=0, round=0, rounds=[], spend=None))
    assert "round" not in line and "spent" not in line
