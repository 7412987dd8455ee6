"""Purging leaves nothing of a run and gives the space back, and a running worker purges old
finished runs by itself.

Deleting rows leaves SQLite's pages free but the file as large as before; `fte purge` and
the worker's retention sweep (`FTE_RETENTION_DAYS`, `fte.retention`) compact the state
store afterwards. The agents' answer memos, which the runtime cannot list, are deleted
from the file too. Checked on the real SQLite file the runtime writes.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from fte.layout import STATE_DB
from fte.stored_runs import read_index
from tests.cli.test_liveness import _env, fte
from tests.support.processes import LoggedProcess, wait_for

pytestmark = pytest.mark.engine

QUERY = "How do durable workflows recover from crashes?"


def _free_pages(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])


def _keys_of(db: Path, task_id: str) -> list[str]:
    """Every state-store key that names this run or one of its child workflows."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        keys = [str(key) for (key,) in conn.execute("SELECT key FROM state")]
    return [key for key in keys if re.search(rf"[|:]{re.escape(task_id)}[|:.]", key)]


def _indexed(db: Path) -> bool:
    return "old-run" in read_index(db)


def _run(data_dir: Path, task_id: str) -> None:
    done = fte(
        "research", QUERY, "--offline", "--id", task_id, "--depth", "0",
        "--out", str(data_dir.parent / "reports"), "--data-dir", str(data_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_purge_compacts_the_state_store(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _run(data_dir, "a-run")
    # A run whose ID starts with the purged one's, which must keep everything.
    _run(data_dir, "a-run-2")
    db = data_dir / STATE_DB
    kept = _keys_of(db, "a-run-2")
    assert any("||answer:" in key for key in _keys_of(db, "a-run"))  # the agents' memos

    purged = fte("purge", "a-run", "--data-dir", str(data_dir))

    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.split() == ["a-run"]
    assert "Purged 1 run(s); state store" in purged.stderr
    sizes = re.search(r"state store ([\d.]+) MB -> ([\d.]+) MB", purged.stderr)
    assert sizes is not None, purged.stderr
    assert float(sizes[2]) < float(sizes[1])
    assert _free_pages(db) == 0
    assert list(read_index(db)) == ["a-run-2"]
    # Nothing of the run is left: history, artifacts, and its answer memos.
    assert _keys_of(db, "a-run") == []
    assert _keys_of(db, "a-run-2") == kept


def test_a_worker_purges_finished_runs_past_the_retention(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _run(data_dir, "old-run")
    db = data_dir / STATE_DB
    assert _indexed(db)

    # About a second: the run just finished is already past it.
    env = {**_env(), "FTE_RETENTION_DAYS": "0.00001"}
    worker = LoggedProcess(
        [sys.executable, "-m", "fte", "worker", "--offline", "--data-dir", str(data_dir)],
        tmp_path / "worker.log",
        env=env,
    )
    try:
        wait_for(lambda: worker.alive() and not _indexed(db), "the retention sweep", timeout=120)
    finally:
        worker.stop()

    assert _free_pages(db) == 0
    assert read_index(data_dir / STATE_DB) == {}
    assert _keys_of(db, "old-run") == []
    assert os.path.getsize(db) > 0
