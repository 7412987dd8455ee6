"""Logs that stay bounded: a file in `<data>/logs` past its size limit is rotated.

Every process of a data directory appends there: `fte.jsonl` (each fte process that runs
research, through a `WatchedFileHandler`) and the runtime's `daprd.log`, `scheduler.log`
and `placement.log` (each runtime process's stdout and stderr, opened when it starts). A
file past `max_bytes` becomes `<name>.1`, `.1` becomes `.2` and so on; the oldest past
`backups` is deleted. One process rotates at a time (an flock on `logs/rotate.lock`), so
two never shift the same files.

- `*.jsonl` files are renamed: the writers open them by name, and each writer's
  `WatchedFileHandler` sees the new inode at its next line and opens a fresh file. No line
  is lost; one written in between ends up at the end of `.1`.
- `*.log` files are copied, then truncated: a runtime process keeps the descriptor it
  started with, opened with O_APPEND, so it goes on writing at the new end. A line written
  between the copy and the truncation is lost, as with logrotate's `copytruncate`.

The stack's owner rotates every minute (`fte.dapr_stack`, and `fte up --replicas` in
`fte.replicas`), and a worker at its hourly retention sweep (`fte.retention`), since a
worker on an external sidecar has no owner to do it. The limits are the settings of the
process that rotates (`FTE_LOG_MAX_MB`, `FTE_LOG_BACKUPS`; `fte.cli` sets them).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import structlog

from fte.locks import FileLock

log = structlog.get_logger(__name__)

MB = 1024 * 1024
ROTATE_LOCK = "rotate.lock"
# How often a long-lived owner of the runtime's processes rotates their logs.
ROTATION_INTERVAL_S = 60.0
# What rotation touches: the live files, never their numbered copies or the lock.
ROTATED_SUFFIXES = (".log", ".jsonl")


@dataclass(frozen=True)
class LogLimits:
    max_bytes: int = 20 * MB
    backups: int = 3


_limits = LogLimits()


def configure(limits: LogLimits) -> None:
    """Set this process's limits (`fte.cli` does, from the settings)."""
    global _limits
    _limits = limits


def rotate(logs_dir: Path, limits: LogLimits | None = None) -> list[str]:
    """Rotate each log in `logs_dir` past its limit; return the names rotated.

    Does nothing while another process rotates (it is doing the same), or when the
    directory is gone.
    """
    limits = limits or _limits
    if not logs_dir.is_dir():
        return []
    lock = FileLock(logs_dir / ROTATE_LOCK)
    try:
        if not lock.acquire(patience_s=0):
            return []
    except OSError:
        return []  # the directory went away meanwhile
    try:
        rotated = []
        for path in sorted(logs_dir.iterdir()):
            if path.suffix not in ROTATED_SUFFIXES or not _past(path, limits.max_bytes):
                continue
            try:
                _shift(path, limits.backups)
                if path.suffix == ".jsonl":
                    path.rename(_numbered(path, 1))
                else:
                    shutil.copyfile(path, _numbered(path, 1))
                    os.truncate(path, 0)
            except OSError as exc:
                log.warning("log rotation failed", path=str(path), error=str(exc))
                continue
            rotated.append(path.name)
        return rotated
    finally:
        lock.release()


def _past(path: Path, max_bytes: int) -> bool:
    try:
        found = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(found.st_mode) and found.st_size > max_bytes


def _numbered(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


def _shift(path: Path, backups: int) -> None:
    """Make room for a new `.1`: `.n` becomes `.n+1`, and the oldest kept is dropped."""
    _numbered(path, backups).unlink(missing_ok=True)
    for n in range(backups - 1, 0, -1):
        older = _numbered(path, n)
        if older.exists():
            older.rename(_numbered(path, n + 1))
