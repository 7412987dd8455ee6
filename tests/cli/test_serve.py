"""`fte serve`: serves schedules until SIGTERM or Ctrl-C, then stops cleanly, leaving nothing."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from fte.dapr_stack import live_stack
from tests.cli.test_cli import SAMPLE_CORPUS, _env, fte
from tests.support.processes import LoggedProcess, pid_alive, wait_for

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_serve_fires_schedules_and_stops_cleanly(tmp_path: Path, stop_signal: int) -> None:
    data = tmp_path / "data"
    env = _env(FTE_SCHEDULE_MIN_INTERVAL_S="1")
    serve = LoggedProcess(
        [sys.executable, "-m", "fte", "serve", "--offline", "--data-dir", str(data)],
        tmp_path / "serve.log",
        env=env,
    )
    try:
        wait_for(lambda: serve.alive() and "fte serve: serving" in serve.log(), "fte serve", 90)
        added = fte(
            "schedule", "add", "tick", "How do durable timers fire after a restart?",
            "--every", "2s", "--corpus", str(SAMPLE_CORPUS), "--offline",
            "--data-dir", str(data), env=env,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert "Started a background worker" not in added.stderr  # serve serves it

        def completed_runs() -> int:
            listed = fte("list", "--data-dir", str(data), env=env)
            return sum(1 for line in listed.stdout.splitlines() if " completed " in line)

        wait_for(lambda: completed_runs() >= 2, "two scheduled runs to complete", 120)
        record = json.loads((data / "stack.json").read_text())
        serve.proc.send_signal(stop_signal)
        assert serve.proc.wait(timeout=60) == 0, serve.log()
    finally:
        serve.stop()
    assert "fte serve: stopped" in serve.log()
    # (The SDK may log a cancelled stream read as it shuts down; the exit code is what counts.)
    assert live_stack(data) is None
    assert not [role for role, pid in record["pids"].items() if pid_alive(pid)]
