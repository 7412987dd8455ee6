"""The evaluation metrics and the scorecard gate, on hand-made inputs (no engine, no network)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from fte import activities
from fte.contracts import SearchInput
from fte.evals import metrics
from fte.evals.retrieval import multi_query_search
from fte.evals.scorecard import Case, Metric, Scorecard, SuiteResult, compare, html_chart, markdown
from fte.sources import LocalCorpus

RANKED = ["a.md", "b.md", "c.md", "d.md"]


@pytest.mark.parametrize(
    ("relevant", "k", "hit", "recall"),
    [
        (["a.md"], 1, 1.0, 1.0),
        (["c.md"], 2, 0.0, 0.0),
        (["c.md"], 3, 1.0, 1.0),
        (["b.md", "z.md"], 3, 1.0, 0.5),
        (["z.md"], 8, 0.0, 0.0),
    ],
    ids=["first", "beyond-k", "at-k", "half-of-two", "never"],
)
def test_hit_and_recall_at_k(relevant: list[str], k: int, hit: float, recall: float) -> None:
    assert metrics.hit_at(RANKED, relevant, k) == hit
    assert metrics.recall_at(RANKED, relevant, k) == recall


def test_reciprocal_rank_is_that_of_the_first_relevant_page() -> None:
    assert metrics.reciprocal_rank(RANKED, ["c.md", "d.md"]) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(RANKED, ["z.md"]) == 0.0


def test_pages_rank_by_their_first_passage() -> None:
    assert metrics.ranked_pages(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_a_fact_needs_one_sentence_holding_every_group() -> None:
    fact = [["timer", "timers"], ["persisted", "stored"], ["restart"]]
    assert metrics.fact_found(fact, ["Durable timers are stored, so they fire after a restart."])
    # Stems meet: "persist" matches "persisted", "restarts" matches "restart".
    assert metrics.fact_found(fact, ["Their timers persist across restarts."])
    # Spread over two sentences, it is not one stated fact.
    assert not metrics.fact_found(fact, ["Timers are stored. A restart happens."])
    assert not metrics.fact_found(fact, ["Timers fire after a restart."])


def _report(**overrides: Any) -> dict[str, Any]:
    claim = {"id": "C1", "text": "x", "source_ids": ["S1"], "sub_question_id": "q1"}
    unsupported = {"id": "C2", "text": "y", "source_ids": ["S2"], "sub_question_id": "q2"}
    report: dict[str, Any] = {
        "sources": [
            {"id": "S1", "passage_id": "p1"},
            {"id": "S2", "passage_id": "p-gone"},
        ],
        "sections": [
            {
                "heading": "h",
                "paragraphs": [
                    {"text": "x", "claim_ids": ["C1"], "source_ids": ["S1"]},
                    {"text": "limits", "claim_ids": [], "source_ids": []},
                ],
            }
        ],
        "claims": [
            {"claim": claim, "verdict": "supported"},
            {"claim": unsupported, "verdict": "contradicted"},
        ],
        "sub_questions": [{"id": "q1", "text": "?"}, {"id": "q2", "text": "?"}],
    }
    report.update(overrides)
    return report


def test_report_metrics() -> None:
    report = _report()
    assert metrics.citation_validity(report, {"p1"}) == 1.0
    assert metrics.supported_claim_share(report) == 0.5
    assert metrics.sub_question_coverage(report) == 0.5
    assert metrics.grounded_text(report) == ["x"]


def test_citation_validity_counts_unknown_ids_and_passages_not_in_the_corpus() -> None:
    paragraphs = [{"text": "x", "claim_ids": ["C1"], "source_ids": ["S1", "S2", "S9"]}]
    report = _report(sections=[{"heading": "h", "paragraphs": paragraphs}])
    assert metrics.citation_validity(report, {"p1"}) == pytest.approx(1 / 3)


def test_multi_query_search_ranks_like_the_search_activity(tmp_path: Path) -> None:
    for name, text in {
        "a.md": "# Timers\n\nDurable timers survive restarts.",
        "b.md": "# Retries\n\nRetry policies back off between attempts.",
        "c.md": "# Both\n\nTimers and retries both use the scheduler.",
    }.items():
        (tmp_path / name).write_text(text)
    corpus = LocalCorpus.load(tmp_path)
    queries = ["durable timers", "retry backoff", "scheduler"]
    deps = activities.ActivityDeps(
        models=cast(Any, None),
        store=cast(Any, None),
        notifier=cast(Any, None),
        corpus=lambda _: corpus,
    )
    previous = activities.configure(deps)
    try:
        raw = activities.search_sources(
            cast(Any, SimpleNamespace(workflow_id="run-1.sources.q1", task_id=1)),
            SearchInput(corpus_dir=str(tmp_path), queries=queries, limit=3).model_dump(),
        )
    finally:
        activities.configure(previous)
    assert [p.passage_id for p in multi_query_search(corpus, queries, 3)] == [
        p["passage_id"] for p in raw["passages"]
    ]


# -- the scorecard gate ------------------------------------------------------------------


def _card(
    value: float, *, cases: dict[str, float], better: str = "higher", gated: bool = True
) -> Scorecard:
    metric = Metric(name="m", value=value, better=cast(Any, better), gated=gated, tolerance=0.01)
    return Scorecard(
        suites=[
            SuiteResult(
                name="s",
                description="d",
                metrics=[metric],
                cases=[Case(id=c, values={"m": v}) for c, v in cases.items()],
            )
        ],
        timings={"s": {"total_s": value}},
    )


def test_a_drop_beyond_the_tolerance_is_a_regression_naming_the_cases_that_moved() -> None:
    baseline = _card(1.0, cases={"q1": 1.0, "q2": 1.0, "q3": 1.0})
    current = _card(0.9, cases={"q1": 1.0, "q2": 0.7, "q3": 1.0})
    (change,) = compare(current, baseline).regressions
    assert change.metric == "m" and change.before == 1.0 and change.after == 0.9
    assert [m.case for m in change.moved] == ["q2"]
    assert "q2 (1.000 -> 0.700)" in change.describe()


@pytest.mark.parametrize(
    ("before", "after", "better", "gated", "regression"),
    [
        (1.0, 0.995, "higher", True, False),  # within the tolerance
        (0.5, 0.9, "higher", True, False),  # better
        (0.0, 0.2, "lower", True, True),  # a lower-is-better metric went up
        (1.0, 0.5, "higher", False, False),  # not gated: reported, never failed
    ],
    ids=["within-tolerance", "improved", "lower-is-better", "ungated"],
)
def test_gate_rules(
    before: float, after: float, better: str, gated: bool, regression: bool
) -> None:
    changes = compare(
        _card(after, cases={}, better=better, gated=gated),
        _card(before, cases={}, better=better, gated=gated),
    ).changes
    assert [c.regression for c in changes] == [regression]


def test_a_metric_that_disappears_is_a_regression() -> None:
    baseline = _card(1.0, cases={})
    current = Scorecard(suites=[SuiteResult(name="s", description="d")])
    assert [c.metric for c in compare(current, baseline).regressions] == ["m"]


def test_timings_are_never_compared() -> None:
    a, b = _card(1.0, cases={}), _card(1.0, cases={})
    b.timings = {"s": {"total_s": 99.0}}
    assert a.comparable() == b.comparable()
    assert not compare(a, b).changes


def test_views_render() -> None:
    baseline = _card(1.0, cases={"q1": 1.0})
    current = _card(0.5, cases={"q1": 0.5})
    page = html_chart(current, baseline)
    assert (
        page.startswith("<!DOCTYPE html>") and "<script" not in page and 'class="bar worse"' in page
    )
    assert "**regression**" in markdown(current, compare(current, baseline))
