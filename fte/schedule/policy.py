"""The overlap decision: what a fire does while the schedule's previous run is still going.

Pure, so the fire activity (which reads the previous run's state) and the tests share it.
"""

from __future__ import annotations

from typing import Literal

from fte.schedule.contracts import FireKind, Overlap

Decision = Literal["start", "skip", "buffer", "cancel-and-start"]


def decide(
    overlap: Overlap, *, previous_running: bool, buffer_taken: bool, kind: FireKind
) -> Decision:
    """- skip: a fire while the previous run is going is skipped (counted, not made up);
    - buffer-one: the first such fire waits until the previous run ends, later ones are
      skipped while one waits;
    - cancel-previous: the previous run is cancelled (it compensates) and the new one starts.
    A buffered fire keeps waiting until the previous run ends, whatever came since."""
    if not previous_running:
        return "start"
    if kind == "buffered":
        return "buffer"
    if overlap == "skip":
        return "skip"
    if overlap == "buffer-one":
        return "skip" if buffer_taken else "buffer"
    return "cancel-and-start"
