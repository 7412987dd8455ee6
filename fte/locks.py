"""Advisory file locks that say who owns what in a data directory.

`stack.lock` is held by the process that runs a data directory's Dapr stack, and
`worker.lock` by the one `fte worker` serving it. An `flock` belongs to an open file, so it
is bound to that file in that directory (a copy of the directory, `cp -a`, has other files,
unlocked) and the kernel releases it when its holder exits, however it exits: a lock can
never be stale the way a pid file can. The holder writes its pid into the file, for
messages only.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path


class FileLock:
    """An exclusive `flock` on `path`, held by this process until `release()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, blocking: bool = False, patience_s: float = 0.5) -> bool:
        """Take the lock; without `blocking`, False if another holder keeps it `patience_s`.

        The patience covers `is_held()` probes, which hold the lock for an instant.
        """
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        give_up_at = time.monotonic() + patience_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(fd)
                    raise
                if time.monotonic() >= give_up_at:
                    os.close(fd)
                    return False
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is None:
            return
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire(blocking=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def is_held(path: Path) -> bool:
    """Whether some open file (in any process, this one included) holds the lock on `path`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def holder_pid(path: Path) -> int | None:
    """The pid the current holder wrote into `path` (None if unknown or not held)."""
    if not is_held(path):
        return None
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().strip())
    return None
