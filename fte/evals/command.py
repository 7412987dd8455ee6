"""`fte eval`: run suites, print the scorecard, write its files, compare with a baseline."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from fte.config import FteSettings
from fte.errors import FteError, UsageError
from fte.evals import e2e, failures, integrity, judge, retrieval
from fte.evals.context import EvalContext
from fte.evals.scorecard import Scorecard, SuiteResult, compare, html_chart, markdown, text_table

Suite = Callable[[EvalContext], SuiteResult]
SUITES: dict[str, Suite] = {
    retrieval.NAME: retrieval.run,
    integrity.NAME: integrity.run,
    e2e.NAME: e2e.run,
    failures.NAME: failures.run,
    judge.NAME: judge.run,
}
# Suites that `--record` records for; the others need nothing recorded.
RECORDED: tuple[str, ...] = (e2e.NAME, judge.NAME)


class SuiteError(FteError):
    """A suite could not produce its metrics (a cassette miss, a run that never ended)."""


def run_eval(
    suites: Sequence[str],
    *,
    out: Path,
    baseline: Path | None,
    record: bool,
    settings: FteSettings | None,
    say: Callable[[str], None],
) -> int:
    """Run `suites` (all when empty) and write the scorecard; 1 when the gate fails."""
    names = list(suites) or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise UsageError(f"unknown suite(s) {unknown}; choose from {list(SUITES)}")
    if record:
        names = [n for n in names if n in RECORDED] or list(RECORDED)
        if not names:
            raise UsageError("no suite records cassettes yet")
    old = _load_baseline(baseline) if baseline else None
    card = Scorecard()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fte-eval-") as work:
        ctx = EvalContext(work_dir=Path(work), record=record, settings=settings, say=say)
        try:
            for name in names:
                say(f"== suite {name}")
                with ctx.timed(name):
                    card.suites.append(SUITES[name](ctx))
        finally:
            ctx.close()
    ctx.timing("all", "total_s", time.monotonic() - started)
    card.timings = ctx.timings
    comparison = compare(card, old) if old else None

    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_text(card.to_json(), encoding="utf-8")
    (out / "scorecard.md").write_text(markdown(card, comparison), encoding="utf-8")
    (out / "scorecard.html").write_text(html_chart(card, old), encoding="utf-8")
    print(text_table(card, comparison))
    say(f"scorecard: {out / 'scorecard.json'}, {out / 'scorecard.md'}, {out / 'scorecard.html'}")
    if comparison is None:
        return 0
    for change in comparison.changes:
        if not change.regression:
            say(f"changed (within the gate): {change.describe()}")
    if comparison.regressions:
        for change in comparison.regressions:
            say(f"REGRESSION {change.describe()}")
        say(
            f"fte eval: {len(comparison.regressions)} metric(s) fell below the baseline "
            f"{baseline}; fix them, or if the change is intended, `make eval-baseline`"
        )
        return 1
    say(f"no metric fell below the baseline {baseline}")
    return 0


def _load_baseline(path: Path) -> Scorecard:
    try:
        return Scorecard.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"baseline scorecard {path} does not exist") from None
    except ValueError as error:
        raise UsageError(f"baseline scorecard {path} is not a scorecard: {error}") from None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
