"""What the console's run and runs pages make of a run's rounds, spend and times (no engine)."""

from __future__ import annotations

from fte.contracts import Gap, Progress, RoundReport, Spend, Stage
from fte.report import round_summary
from fte.ui.views import budget_cell, moment, round_views, spend_view

GAPS = [
    Gap(id="g2.1", kind="contradicted", question="Is <b>it</b> so?", claim_id="c3"),
    Gap(id="g2.2", kind="unanswered", question="What else?", sub_question_id="q4"),
]


def _progress(stage: Stage, round_now: int, rounds: list[RoundReport]) -> Progress:
    return Progress(
        task_id="t",
        query="q",
        stage=stage,
        started_at="2026-11-26T04:00:00+00:00",
        updated_at="2026-11-26T04:01:00+00:00",
        depth=2,
        round=round_now,
        rounds=rounds,
    )


def test_the_round_under_way_is_marked_until_it_is_done() -> None:
    done = RoundReport(round=1, state="done", sources_found=["S9"], claims_added=["c7"])
    searching = RoundReport(round=2, state="searching", looked_for=GAPS)
    views = round_views(_progress("finding_sources", 2, [done, searching]), [done, searching])
    assert [(v.number, v.under_way) for v in views] == [(1, False), (2, True)]
    assert views[0].summary == round_summary(done)
    assert [(g.label, g.question, g.about) for g in views[1].looked_for] == [
        ("Contradicted claim", "Is <b>it</b> so?", "claim c3"),
        ("Unanswered", "What else?", "sub-question q4"),
    ]
    # A finished run has no round under way, even if its last round never reached "done".
    cut = round_views(_progress("failed", 2, [done, searching]), [done, searching])
    assert not any(v.under_way for v in cut)


def test_spend_against_each_limit_and_the_budgets_note() -> None:
    spend = Spend(
        tokens=35_206,
        usd=0.0123,
        budget_usd=0.05,
        max_tokens=200_000,
        stopped="the budget ended the research: round 2 would pass it",
    )
    view = spend_view(spend)
    assert view is not None and view.limited
    assert (view.tokens, view.max_tokens, view.usd, view.budget_usd) == (
        "35,206",
        "200,000 tokens",
        "$0.0123",
        "$0.0500",
    )
    assert view.stopped == "The budget ended the research: round 2 would pass it."
    assert view.summary == spend.describe()
    assert budget_cell(spend) == (
        ["35.2k / 200k tokens", "$0.01 / $0.05", "stopped by the budget"],
        spend.describe(),
    )
    unpriced = spend_view(Spend(tokens=10, usd=None))
    assert unpriced is not None and not unpriced.limited
    assert (unpriced.usd, unpriced.budget_usd) == ("unknown (a model without a price)", "no limit")
    assert budget_cell(Spend(tokens=10)) == ([], "")
    assert budget_cell(None) == ([], "")


def test_times_are_short_in_utc_with_the_full_one_kept() -> None:
    m = moment("2026-11-26T05:25:13+01:00")
    assert (m.short, m.iso) == ("2026-11-26 04:25", "2026-11-26T05:25:13+01:00")
    assert moment("2026-11-26T04:25:13").short == "2026-11-26 04:25"  # naive: taken as UTC
    assert moment("").short == "" and moment("yesterday").short == "yesterday"
