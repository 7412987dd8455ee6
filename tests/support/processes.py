"""Helpers for tests that start, wait on and stop processes of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tests.support import PROJECT_ROOT


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 90) -> None:
    """Poll an observable condition; tests never sleep for a fixed time instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LoggedProcess:
    """A process started from the checkout whose output goes to a log file."""

    def __init__(
        self, argv: Sequence[str], log_path: Path, *, env: Mapping[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            list(argv),
            cwd=PROJECT_ROOT,
            env=None if env is None else dict(env),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        """Whether it still runs; a test waiting on it fails fast, with its log, if not."""
        assert self.proc.poll() is None, self.log()
        return True

    def sigkill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        stop(self.proc)
        self._log.close()
