"""The run index read straight from an idle data directory's SQLite state store.

Asking the runtime means starting it: placement, scheduler and daprd, a second or more.
For a question the index alone answers — is there a run with this ID? are there any
runs? — a command reads the index row itself, but only when nothing else can be writing
or serving it: no stack runs in the directory (its lock is free), no external sidecar is
configured, and the state store is the embedded SQLite one. Otherwise (None) the caller
asks the runtime as before.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fte import locks
from fte.dapr_build import find_binaries
from fte.dapr_stack import read_ports, read_record
from fte.errors import RuntimeSetupError
from fte.layout import ANSWER_PREFIX, APP_ID, LOCK_FILE, RUN_INDEX_KEY, STATE_DB


def embedded(*, external_store: bool) -> bool:
    """Whether the runtime's state is this directory's SQLite file (not an external sidecar's
    or a configured database's)."""
    return not (
        external_store or os.environ.get("DAPR_GRPC_ENDPOINT") or os.environ.get("DAPR_GRPC_PORT")
    )


def idle_index(data_dir: Path, *, external_store: bool) -> dict[str, Any] | None:
    """The runs of an idle embedded data directory (task ID -> entry); None: ask the runtime."""
    if not embedded(external_store=external_store):
        return None
    if locks.is_held(data_dir / LOCK_FILE):
        return None
    # The records are checked as a start checks them, so a malformed one is the same error;
    # a valid stack record without its lock is a crashed stack, for a start to clean up.
    if read_record(data_dir) is not None:
        return None
    read_ports(data_dir)
    if os.environ.get("FTE_DAPRD"):
        find_binaries(build_if_missing=False)  # a wrong runtime path is reported either way
    return read_index(data_dir / STATE_DB)


def read_index(db: Path) -> dict[str, Any]:
    """The run index in the SQLite state store `db` (read-only; {} if there is none yet)."""
    if not db.exists():
        return {}
    try:
        # Read-only: an idle directory stays as it was. Dapr creates the table on first start.
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            row = conn.execute(
                "SELECT value, is_binary FROM state WHERE key = ?", (f"{APP_ID}||{RUN_INDEX_KEY}",)
            ).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise RuntimeSetupError(f"cannot read the state store {db}: {exc}") from None
    if row is None:
        return {}
    value, is_binary = row
    raw = base64.b64decode(value) if is_binary else value
    runs = json.loads(raw).get("runs", {})
    return runs if isinstance(runs, dict) else {}


def state_store_bytes(data_dir: Path) -> int:
    """Size of the embedded SQLite state store on disk, its write-ahead log included."""
    db = data_dir / STATE_DB
    return sum(
        path.stat().st_size for path in (db, db.with_name(db.name + "-wal")) if path.exists()
    )


def reclaim_space(data_dir: Path) -> tuple[int, int]:
    """Give the space of deleted rows back to the file system; (bytes before, bytes after).

    Deleting rows only marks SQLite pages free: a purge of 50 runs left a 41 MB file 99.9 %
    empty. VACUUM rewrites the file; the runtime's own connections may stay open (they hold
    no transaction between requests, and busy_timeout waits out one that does). The WAL
    checkpoint then moves the rewrite into the main file and truncates the log.
    """
    db = data_dir / STATE_DB
    before = state_store_bytes(data_dir)
    if not db.exists():
        return before, before
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as exc:
        raise RuntimeSetupError(f"cannot compact the state store {db}: {exc}") from None
    finally:
        conn.close()
    return before, state_store_bytes(data_dir)


def purge_leftovers(data_dir: Path, task_ids: Iterable[str]) -> tuple[int, int]:
    """After these runs were purged through the runtime: delete what it cannot, their answer
    memos, then give the space back (`reclaim_space`); (bytes before, bytes after).

    An agent activity keeps the model's answer for an hour against redelivery
    (`fte.artifacts.answer_key`), under `answer:<workflow>:…` where the workflow is the run
    or one of its children (`<run>.<role>`; a task ID has no dot). Dapr's state API cannot
    list keys, but this file is ours to read: a purged run's answers go with it.
    """
    db = data_dir / STATE_DB
    if db.exists():
        conn = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            for task_id in task_ids:
                for after_id in (":", "."):  # the run's own answers, then its children's
                    start = f"{APP_ID}||{ANSWER_PREFIX}:{task_id}{after_id}"
                    past = start[:-1] + chr(ord(after_id) + 1)  # the first key after them all
                    conn.execute("DELETE FROM state WHERE key >= ? AND key < ?", (start, past))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise RuntimeSetupError(f"cannot delete from the state store {db}: {exc}") from None
        finally:
            conn.close()
    return reclaim_space(data_dir)
