"""`fte.entry.leave`: the command's exit skips the heap teardown, not what the teardown owes.

The exit code is the command's, output written to a pipe arrives, a non-daemon thread still
working is waited for, and `atexit` handlers (log flushes, span exporters) run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROGRAM = textwrap.dedent(
    """
    import atexit, threading, time
    from fte.entry import leave

    def late_worker():
        time.sleep(0.2)
        print("thread finished", flush=False)

    atexit.register(lambda: print("atexit ran", flush=False))
    threading.Thread(target=late_worker).start()
    print("buffered output", end="\\n", flush=False)
    leave(7)
    """
)


def test_leave_keeps_exit_code_output_threads_and_atexit() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 7, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["buffered output", "thread finished", "atexit ran"], done.stdout
