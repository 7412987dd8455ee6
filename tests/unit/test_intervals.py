"""`Interval`: periodic work in long-lived loops, on a fake clock."""

from __future__ import annotations

from fte.intervals import Interval


def test_due_once_per_interval_first_after_one() -> None:
    now = [100.0]
    every = Interval(10, clock=lambda: now[0])
    assert not every.due()
    now[0] = 110.0
    assert every.due() and not every.due()  # once, then not until the next interval
    now[0] = 119.9
    assert not every.due()
    now[0] = 125.0
    assert every.due()


def test_at_once_is_due_at_the_first_call() -> None:
    now = [0.0]
    every = Interval(60, at_once=True, clock=lambda: now[0])
    assert every.due() and not every.due()
    now[0] = 60.0
    assert every.due()
