"""Who serves a data directory's runs: at most one `fte worker` per data directory.

The sidecar routes work only to a connected worker, and a detached run needs one after its
command returns; commands that need a worker start `fte worker --until-idle` in the
background. Two facts, each one lock file in the data directory (`fte.locks`):

- `worker.lock` is held by the `fte worker` serving the directory for as long as it runs.
  Whether a worker serves is that lock, not whether a stack runs: `fte up` runs a stack with
  no worker, and a detached run scheduled there would wait for ever.
- `worker-start.lock` is held while a command decides to start one, so ten commands at once
  start one worker, not five.

With an external sidecar (`DAPR_GRPC_PORT`, `dapr run`) none of this applies: the
application's own workers serve it, as many as it runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from fte import locks
from fte.dapr_stack import external_endpoint, live_stack, read_ports, read_record
from fte.errors import DataDirInUseError, RuntimeSetupError

WORKER_LOCK = "worker.lock"
START_LOCK = "worker-start.lock"
WORKER_LOG = "worker.log"
# One empty file per command that needs the worker to stay: named by the command's pid.
LEASES = "worker-leases"
START_TIMEOUT_S = 60.0
# A background worker lets running activities finish (up to 15 s) and stops its stack.
HANDOVER_TIMEOUT_S = 60.0


@contextlib.contextmanager
def worker_needed(data_dir: Path) -> Iterator[None]:
    """While the block runs, a background worker of `data_dir` does not exit as idle.

    Its idle check counts unfinished runs, and a schedule's control request is not a run:
    without this the worker could stop between the request and the loop applying it.
    """
    directory = data_dir / LEASES
    directory.mkdir(parents=True, exist_ok=True)
    lease = directory / str(os.getpid())
    lease.touch()
    try:
        yield
    finally:
        lease.unlink(missing_ok=True)


def worker_needed_by_a_command(data_dir: Path) -> bool:
    """Whether a live command holds a lease; leases of exited commands are cleared."""
    directory = data_dir / LEASES
    needed = False
    for lease in directory.glob("*") if directory.is_dir() else ():
        if lease.name.isdigit() and _alive(int(lease.name)):
            needed = True
        else:
            lease.unlink(missing_ok=True)
    return needed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and not ours to judge
    return True


def serving_worker(data_dir: Path) -> int | None:
    """The pid of the `fte worker` serving `data_dir`, if one does (0 if its pid is unknown)."""
    path = data_dir / WORKER_LOCK
    if not locks.is_held(path):
        return None
    return locks.holder_pid(path) or 0


@contextlib.contextmanager
def worker_claim(data_dir: Path, *, replace_background: bool = False) -> Iterator[None]:
    """Hold `data_dir`'s worker lock while serving it; refuse if another worker does.

    `replace_background`: a worker someone started on purpose (`fte worker`, `fte serve`)
    takes over from a background one (`--until-idle`, started by a command) instead of
    being refused: the background worker is asked to stop (SIGTERM: it lets running
    activities finish) and the runs it served carry on with this one.
    """
    if external_endpoint() is not None:
        yield
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = locks.FileLock(data_dir / WORKER_LOCK)
    if not lock.acquire():
        pid = locks.holder_pid(data_dir / WORKER_LOCK)
        if not (replace_background and pid and _stop_background_worker(pid, data_dir, lock)):
            raise DataDirInUseError(
                f"an fte worker (pid {pid or 'unknown'}) already serves {data_dir}: one worker "
                "per data directory, and it serves every run there"
            )
    try:
        yield
    finally:
        lock.release()


def _stop_background_worker(pid: int, data_dir: Path, lock: locks.FileLock) -> bool:
    """Ask the background worker `pid` of `data_dir` to stop, then take its lock."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    flags = dict(zip(argv, argv[1:], strict=False))
    served = flags.get("--data-dir")
    ours = served is not None and (cwd / served).resolve() == data_dir.resolve()
    if "--until-idle" not in argv or not ours:
        return False  # not a background worker of this directory: never signal it
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return lock.acquire(patience_s=HANDOVER_TIMEOUT_S)


def ensure_worker(data_dir: Path, *, offline: bool, say: Callable[[str], None]) -> None:
    """Start `fte worker --until-idle` in the background unless a worker serves `data_dir`."""
    if external_endpoint() is not None:
        return
    # What the worker would fail on is this command's one-line error, before it starts one.
    read_record(data_dir)
    read_ports(data_dir)
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with locks.FileLock(data_dir / START_LOCK):  # blocking: one command decides at a time
        if serving_worker(data_dir) is not None:
            return
        argv = [sys.executable, "-m", "fte", "worker", "--until-idle", "--data-dir", str(data_dir)]
        if offline:
            argv.append("--offline")
        with (logs / WORKER_LOG).open("ab") as log_file:
            worker = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives this command and its terminal
            )
        _wait_until_serving(data_dir, worker, logs / WORKER_LOG)
    say(f"Started a background worker (log: {logs / WORKER_LOG}); it exits when idle")


def _wait_until_serving(data_dir: Path, worker: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while serving_worker(data_dir) is None or live_stack(data_dir) is None:
        code = worker.poll()
        if code is not None:
            raise RuntimeSetupError(
                f"the background worker exited at once (exit code {code}); see {log_path}"
            )
        if time.monotonic() > deadline:
            raise RuntimeSetupError(
                f"the background worker did not start within {START_TIMEOUT_S:.0f} s; "
                f"see {log_path}"
            )
        time.sleep(0.1)
