"""Benchmark: how long the embedded Dapr stack takes to become ready.

Measures, side by side in one run, a cold start (fresh data directory) and
repeated warm starts (same data directory, binaries already built), and prints
the numbers. The goal from the runtime issue is warm start <= 5 s.

    python benchmarks/runtime_start.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack
from fte.logs import configure_logging

WARM_GOAL_S = 5.0


def _time_start(data_dir: Path) -> float:
    stack = EmbeddedStack(data_dir=data_dir, binaries=find_binaries())
    started = time.perf_counter()
    stack.start()
    ready = time.perf_counter() - started
    stack.stop()
    return ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    configure_logging()
    find_binaries()  # build outside the measurement if needed

    with tempfile.TemporaryDirectory(prefix="fte-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        cold = _time_start(data_dir)
        warm = [_time_start(data_dir) for _ in range(args.rounds)]

    print(f"cold start (fresh data dir):  {cold:.2f} s")
    print(
        f"warm start x{len(warm)}: min {min(warm):.2f} s, median {statistics.median(warm):.2f} s, "
        f"max {max(warm):.2f} s"
    )
    print(f"warm/cold ratio (median):     {statistics.median(warm) / cold:.2f}")
    verdict = "meets" if max(warm) <= WARM_GOAL_S else "MISSES"
    print(f"goal: warm start <= {WARM_GOAL_S:.0f} s -> {verdict}")
    return 0 if max(warm) <= WARM_GOAL_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
