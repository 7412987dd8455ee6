"""Work a long-lived loop does now and then (a retention sweep, a log rotation, a check of
the schedules): `Interval.due()` says when, so each loop keeps no clock arithmetic of its own."""

from __future__ import annotations

import time
from collections.abc import Callable


class Interval:
    """`due()` is true at most once per `seconds`: first after `seconds`, or at the first
    call with `at_once`."""

    def __init__(
        self,
        seconds: float,
        *,
        at_once: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds = seconds
        self._clock = clock
        self._next = clock() + (0.0 if at_once else seconds)

    def due(self) -> bool:
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + self._seconds
        return True
