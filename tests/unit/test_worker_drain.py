"""What `WorkflowWorker.stop` waits for: the last result sent, except those of ended runs."""

from __future__ import annotations

import math

from fte.worker import _InFlight


def test_results_of_settled_runs_and_their_children_do_not_hold_the_stop() -> None:
    sent = _InFlight()
    for instance in ("r1.analyst", "r1", "r2.sources.q1"):
        sent.begin()
        sent.done(instance)
    assert sent.count == 0
    assert sent.since_last_done() < 60
    # r2's child sent last; once r1 ended, only r2 counts, and once both ended, nothing does.
    assert sent.since_last_done(except_runs={"r1"}) < 60
    assert sent.since_last_done(except_runs={"r1", "r2"}) == math.inf
