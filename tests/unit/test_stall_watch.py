"""The stall watch's reading of daprd's log: when it asks daprd, and what it concludes.

daprd itself is in tests/dapr_stack/test_work_stream_stall.py (the deadlock reproduced, and
a healthy daprd left alone); here the log lines and daprd's answer are given, and the clock
is moved by hand.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fte.stall_watch import StallWatch

OPENED = 'level=info msg="work item stream established by user-agent: [grpc-python]"\n'
CLOSED = 'level=info msg="work item stream closed"\n'
SEND_FAILED = 'level=error msg="encountered an error while sending work item: timed out"\n'
REFUSED = 'level=warning msg="unable to establish work item stream at this time: x"\n'
NOISE = 'level=error msg="actor type dapr.internal.default.fte.workflow not registered"\n'


class Daprd:
    """What the watch sees of daprd: its log, its worker count and the time.

    Patience counts from the round in which the watch first reads a line, as the launcher
    reads the log twice a second.
    """

    def __init__(self, tmp_path: Path) -> None:
        self.log = tmp_path / "daprd.log"
        self.log.write_text("--- starting daprd\n")
        self.now = 100.0
        self.workers: int | None = 0
        self.asked = 0

    def write(self, *lines: str) -> None:
        with self.log.open("a") as handle:
            handle.write("".join(lines))

    def count(self) -> int | None:
        self.asked += 1
        return self.workers

    def watch(self, offset: int = 0) -> StallWatch:
        return StallWatch(
            self.log, self.count, offset=offset, patience_s=10, clock=lambda: self.now
        )


@pytest.fixture
def daprd(tmp_path: Path) -> Daprd:
    return Daprd(tmp_path)


def test_a_stream_opened_after_the_last_one_ended_and_never_counted_is_a_stall(
    daprd: Daprd,
) -> None:
    watch = daprd.watch()
    daprd.write(OPENED)
    daprd.workers = 1
    assert not watch.stalled()
    daprd.write(CLOSED, NOISE)
    daprd.workers = 0
    assert not watch.stalled()
    daprd.write(OPENED, NOISE, NOISE)
    assert not watch.stalled()  # the launcher polls twice a second: it sees the line now
    daprd.now += 9.9
    assert not watch.stalled(), "within its patience"
    assert daprd.asked == 0, "daprd is asked only once a stream has waited"
    daprd.now += 0.2
    assert watch.stalled()
    assert daprd.asked == 1


def test_a_counted_stream_is_healthy_however_long_it_has_been_open(daprd: Daprd) -> None:
    watch = daprd.watch()
    daprd.write(OPENED)
    daprd.workers = 1
    assert not watch.stalled()
    daprd.now += 60
    assert not watch.stalled()
    daprd.now += 60
    assert not watch.stalled()
    assert daprd.asked == 1, "once counted, daprd is not asked again until the next stream"


@pytest.mark.parametrize(
    "ending", [CLOSED, SEND_FAILED, REFUSED], ids=["closed", "send", "refused"]
)
def test_every_way_a_stream_ends_clears_the_wait(daprd: Daprd, ending: str) -> None:
    watch = daprd.watch()
    daprd.write(OPENED)
    assert not watch.stalled()
    daprd.write(ending)
    daprd.now += 60
    assert not watch.stalled()
    assert daprd.asked == 0


def test_no_answer_from_daprd_is_no_verdict(daprd: Daprd) -> None:
    watch = daprd.watch()
    daprd.write(OPENED)
    assert not watch.stalled()
    daprd.now += 60
    daprd.workers = None
    assert not watch.stalled()
    daprd.workers = 0
    assert watch.stalled()


def test_only_this_daprds_lines_and_only_whole_ones_are_read(daprd: Daprd) -> None:
    # An earlier daprd's stream, opened and never closed before it died, is not this one's.
    daprd.write(OPENED)
    watch = daprd.watch(offset=daprd.log.stat().st_size)
    daprd.now += 60
    assert not watch.stalled()
    # A line still being written is read once it is whole.
    daprd.write(OPENED[:20])
    assert not watch.stalled()
    daprd.write(OPENED[20:])
    assert not watch.stalled()
    daprd.now += 10
    daprd.workers = 0
    assert watch.stalled()
