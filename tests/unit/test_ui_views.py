"""The evals page's data: the latest scorecard against the baseline, scaled for the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fte import package_path
from fte.ui.views import BAR_MAX, eval_page

BASELINE = package_path("evals", "data") / "baseline.json"


def _card(tmp_path: Path, change: dict[str, float]) -> Path:
    card: dict[str, Any] = json.loads(BASELINE.read_text())
    for suite in card["suites"]:
        for metric in suite["metrics"]:
            if metric["name"] in change:
                metric["value"] = change[metric["name"]]
    path = tmp_path / "scorecard.json"
    path.write_text(json.dumps(card))
    return path


def test_a_gated_metric_worse_than_its_tolerance_is_flagged(tmp_path: Path) -> None:
    page = eval_page(_card(tmp_path, {"citation_validity": 0.5}), BASELINE)
    assert page.found and page.regressions == ["citation_validity"]
    bar = next(b for b in page.bars if b.name == "citation_validity")
    assert bar.worse and bar.value == "0.500" and bar.baseline == "1.000"
    assert bar.now_width == BAR_MAX / 2 and bar.base_width == BAR_MAX
    assert not [b for b in page.bars if b.worse and b.name != "citation_validity"]
    assert page.chart_height > 0 and len(page.bars) > 10


def test_the_baseline_against_itself_has_no_regression() -> None:
    page = eval_page(BASELINE, BASELINE)
    assert page.found and page.regressions == [] and not page.problem
    assert all(b.value == b.baseline for b in page.bars)


def test_a_missing_or_broken_scorecard_says_so(tmp_path: Path) -> None:
    missing = eval_page(tmp_path / "none.json", BASELINE)
    assert not missing.found and "fte eval` writes one" in missing.problem
    (tmp_path / "bad.json").write_text("{not json")
    broken = eval_page(tmp_path / "bad.json", BASELINE)
    assert not broken.found and "cannot read" in broken.problem
    alone = eval_page(BASELINE, tmp_path / "none.json")
    assert alone.found and "no readable baseline" in alone.problem
    assert all(b.baseline == "-" for b in alone.bars)
