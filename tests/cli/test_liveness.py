"""Liveness with real processes: nothing hangs silently when part of the runtime dies.

Each test starts `fte` commands as separate processes on a data directory of its own, kills
what a user (or the OOM killer) might kill, and checks that the damage is noticed within
seconds, said on the terminal, and mended where it can be: a runtime process is restarted
by its launcher, a stack whose owner died is taken over by a command attached to it, and a
data directory gets exactly one background worker however many commands ask for one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fte.dapr_stack import STACK_RECORD, live_stack
from fte.serving import WORKER_LOG, serving_worker
from tests.support import PROJECT_ROOT
from tests.support.processes import LoggedProcess, wait_for

pytestmark = pytest.mark.engine

QUERY = "How do durable workflows recover from crashes?"
TIMEOUT_S = 180
# "Within seconds": generous for a loaded 2-core CI machine, far from the minutes of a hang.
NOTICE_S = 15


def _env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "DAPR_", "FTE_DATA_DIR", "FTE_MODEL"))
    }


def fte(*args: str, timeout: float = TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fte", *args],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fte_process(log: Path, *args: str) -> LoggedProcess:
    return LoggedProcess([sys.executable, "-m", "fte", *args], log, env=_env())


def _pids(data_dir: Path) -> dict[str, int]:
    pids: dict[str, int] = json.loads((data_dir / STACK_RECORD).read_text())["pids"]
    return pids


def _completed(data_dir: Path, task_id: str) -> bool:
    status = fte("status", task_id, "--data-dir", str(data_dir))
    return status.returncode == 0 and "[completed]" in status.stdout


def _wait_completed(data_dir: Path, task_id: str) -> None:
    wait_for(lambda: _completed(data_dir, task_id), f"{task_id} to complete", timeout=TIMEOUT_S)


def _background_workers(data_dir: Path) -> list[int]:
    """Live `fte worker` processes serving `data_dir`, found in /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "worker" in words and str(data_dir) in words and "fte" in words:
            found.append(int(entry.name))
    return found


def test_detach_onto_a_stack_without_a_worker_starts_one(tmp_path: Path) -> None:
    """`fte up` runs a stack but no worker; `research --detach` once waited on it for ever."""
    data_dir = tmp_path / "data"
    up = fte_process(tmp_path / "up.log", "up", "--data-dir", str(data_dir))
    try:
        wait_for(lambda: up.alive() and live_stack(data_dir) is not None, "fte up's stack")

        started = time.monotonic()
        detached = fte(
            "research", QUERY, "--detach", "--offline", "--id", "on-up",
            "--data-dir", str(data_dir), timeout=90,
        )  # fmt: skip

        assert detached.returncode == 0, detached.stderr
        assert time.monotonic() - started < 60
        assert "Started a background worker" in detached.stderr
        _wait_completed(data_dir, "on-up")
        assert up.alive()  # served by the new worker on fte up's stack
    finally:
        up.stop()


def test_ten_simultaneous_detach_commands_start_one_worker(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    commands = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fte",
                "research",
                QUERY,
                "--detach",
                "--offline",
                "--id",
                f"many-{i}",
                "--data-dir",
                str(data_dir),
            ],
            cwd=PROJECT_ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in range(10)
    ]
    outputs = [command.communicate(timeout=TIMEOUT_S) for command in commands]

    assert [c.returncode for c in commands] == [0] * 10, [err for _, err in outputs]
    assert sum("Started a background worker" in err for _, err in outputs) == 1
    worker_log = (data_dir / "logs" / WORKER_LOG).read_text()
    assert worker_log.count("fte worker serving research runs") == 1, worker_log
    assert len(_background_workers(data_dir)) == 1
    for i in range(10):
        _wait_completed(data_dir, f"many-{i}")


def test_a_second_worker_on_a_data_dir_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = fte_process(tmp_path / "first.log", "worker", "--offline", "--data-dir", str(data_dir))
    try:
        wait_for(lambda: first.alive() and live_stack(data_dir) is not None, "the first worker")
        assert serving_worker(data_dir) == first.proc.pid

        second = fte("worker", "--offline", "--data-dir", str(data_dir), timeout=60)

        assert second.returncode == 3
        assert f"an fte worker (pid {first.proc.pid}) already serves" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1, second.stderr
        assert first.alive()
    finally:
        first.stop()


def test_a_worker_started_on_purpose_replaces_a_background_one(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    detached = fte(
        "research", QUERY, "--detach", "--offline", "--approve-plan", "--id", "handed-over",
        "--data-dir", str(data_dir), timeout=90,
    )  # fmt: skip
    assert detached.returncode == 0, detached.stderr
    background = serving_worker(data_dir)
    assert background, "the detach started a background worker"

    foreground = fte_process(
        tmp_path / "worker.log", "worker", "--offline", "--data-dir", str(data_dir)
    )
    try:
        wait_for(
            lambda: foreground.alive() and serving_worker(data_dir) == foreground.proc.pid,
            "the new worker to take over",
            timeout=90,
        )
        wait_for(
            lambda: background not in _background_workers(data_dir), "the background one to exit"
        )
        approved = fte("approve", "handed-over", "--data-dir", str(data_dir))
        assert approved.returncode == 0, approved.stderr
        assert "Started a background worker" not in approved.stderr
        _wait_completed(data_dir, "handed-over")
    finally:
        foreground.stop()


def test_a_worker_takes_the_stack_over_when_its_owner_dies(tmp_path: Path) -> None:
    """Killing `fte up` under an attached worker once left it redialling a dead port."""
    data_dir = tmp_path / "data"
    up = fte_process(tmp_path / "up.log", "up", "--data-dir", str(data_dir))
    worker: LoggedProcess | None = None
    try:
        # fte up owns the stack; the worker, started after it, attaches.
        wait_for(lambda: up.alive() and live_stack(data_dir) is not None, "fte up's stack")
        worker = fte_process(
            tmp_path / "worker.log", "worker", "--offline", "--data-dir", str(data_dir)
        )
        wait_for(lambda: worker.alive() and "serving research runs" in worker.log(), "the worker")
        grpc_port = json.loads((data_dir / STACK_RECORD).read_text())["ports"]["daprd_grpc"]

        up.sigkill()

        wait_for(
            lambda: f"(pid {up.proc.pid}) is gone; taking it over" in worker.log(),
            "the worker to notice",
            timeout=NOTICE_S,
        )

        def taken_over() -> bool:
            assert worker is not None
            record = live_stack(data_dir)
            return worker.alive() and record is not None and record.owner_pid == worker.proc.pid

        wait_for(taken_over, "the worker to take the stack over", timeout=60)
        record = live_stack(data_dir)
        assert record is not None and record.ports["daprd_grpc"] == grpc_port  # same port

        # The worker serves again: a new run scheduled on the stack it now owns completes.
        detached = fte(
            "research", QUERY, "--detach", "--offline", "--id", "after-takeover",
            "--data-dir", str(data_dir), timeout=90,
        )  # fmt: skip
        assert detached.returncode == 0, detached.stderr
        assert "Started a background worker" not in detached.stderr
        _wait_completed(data_dir, "after-takeover")
    finally:
        if worker is not None:
            worker.stop()
        up.stop()


@pytest.mark.parametrize("role", ["scheduler", "placement", "daprd"])
def test_a_killed_runtime_process_is_restarted_and_the_run_finishes(
    tmp_path: Path, role: str
) -> None:
    """Killing the scheduler or placement mid-run once froze `fte research` for 11+ minutes."""
    data_dir = tmp_path / "data"
    research = fte_process(
        tmp_path / "research.log",
        "research", QUERY, "--approve-plan", "--offline", "--id", "gated",
        "--data-dir", str(data_dir), "--out", str(tmp_path / "out"),
    )  # fmt: skip
    try:
        wait_for(lambda: research.alive() and live_stack(data_dir) is not None, "the stack")
        wait_for(
            lambda: "fte approve gated" in research.log(), "the run to wait at its gate", TIMEOUT_S
        )
        victim = _pids(data_dir)[role]

        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()

        wait_for(
            lambda: f"the Dapr {role} (pid {victim}) exited (killed by SIGKILL)" in research.log(),
            "the launcher to say what died",
            timeout=NOTICE_S,
        )
        # The new pid is recorded when the process starts; "is back" is said once it is
        # healthy, a moment later on a loaded machine: wait for both.
        wait_for(
            lambda: (
                _pids(data_dir)[role] != victim
                and live_stack(data_dir) is not None
                and f"the Dapr {role} is back" in research.log()
            ),
            f"a new {role}",
            timeout=NOTICE_S + 30,
        )
        assert time.monotonic() - killed_at < NOTICE_S + 30

        approved = fte("approve", "gated", "--data-dir", str(data_dir))
        assert approved.returncode == 0, approved.stderr
        assert research.proc.wait(timeout=TIMEOUT_S) == 0, research.log()
        assert (tmp_path / "out" / "gated.md").is_file()
    finally:
        research.stop()
