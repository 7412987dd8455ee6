"""Helpers for tests that start, wait on and stop processes of their own."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


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
