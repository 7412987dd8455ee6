"""Log rotation (fte.log_files): bounded files, nothing lost by writers that go on writing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from fte import log_files
from fte.locks import FileLock
from fte.log_files import ROTATE_LOCK, LogLimits, rotate

SMALL = LogLimits(max_bytes=100, backups=2)


def test_a_log_past_its_limit_is_rotated_and_the_oldest_copy_dropped(tmp_path: Path) -> None:
    log = tmp_path / "fte.jsonl"
    for generation in range(4):
        log.write_text(f"generation {generation}\n" * 20)
        assert rotate(tmp_path, SMALL) == ["fte.jsonl"]
    assert not log.exists()  # renamed; the next writer creates it
    assert (tmp_path / "fte.jsonl.1").read_text().startswith("generation 3")
    assert (tmp_path / "fte.jsonl.2").read_text().startswith("generation 2")
    assert not (tmp_path / "fte.jsonl.3").exists()  # two backups kept


def test_logs_under_their_limit_and_other_files_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "daprd.log").write_text("short\n")
    (tmp_path / "notes.txt").write_text("x" * 1000)
    (tmp_path / "daprd.log.1").write_text("x" * 1000)
    assert rotate(tmp_path, SMALL) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "daprd.log",
        "daprd.log.1",
        "notes.txt",
        ROTATE_LOCK,
    ]


def test_a_held_log_is_copied_and_truncated_and_its_writer_goes_on_at_the_start(
    tmp_path: Path,
) -> None:
    # As the launcher opens a runtime process's log: append mode, kept open for its life.
    log = tmp_path / "daprd.log"
    with log.open("ab", buffering=0) as held:
        held.write(b"old line\n" * 20)
        assert rotate(tmp_path, SMALL) == ["daprd.log"]
        held.write(b"new line\n")
    assert (tmp_path / "daprd.log.1").read_bytes() == b"old line\n" * 20
    # O_APPEND: written at the new end, not at the old offset after a hole of NUL bytes.
    assert log.read_bytes() == b"new line\n"


def test_only_one_process_rotates_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "fte.jsonl").write_text("x" * 1000)
    other = FileLock(tmp_path / ROTATE_LOCK)
    assert other.acquire()
    try:
        assert rotate(tmp_path, SMALL) == []
    finally:
        other.release()
    assert rotate(tmp_path, SMALL) == ["fte.jsonl"]


def test_a_missing_logs_directory_is_nothing_to_rotate(tmp_path: Path) -> None:
    assert rotate(tmp_path / "gone", SMALL) == []


WRITER = """
import sys
from pathlib import Path
from typing import cast
import structlog
from fte.logs import configure_logging
configure_logging(json_file=Path(sys.argv[1]), level="critical")
log = structlog.get_logger("writer")
for n in range(int(sys.argv[3])):
    log.info("line", writer=sys.argv[2], n=n)
"""


def test_writers_in_other_processes_lose_no_line_while_their_log_is_rotated(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = 3000
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(logs / "fte.jsonl"), name, str(lines)],
            stderr=subprocess.PIPE,
        )
        for name in ("a", "b")
    ]
    limits = LogLimits(max_bytes=20_000, backups=1000)
    rotations = 0
    while any(w.poll() is None for w in writers):
        rotations += len(rotate(logs, limits))
    for w in writers:
        assert w.wait() == 0, w.stderr.read() if w.stderr else ""
    assert rotations >= 3  # the writers really were rotated under
    # Each writer moved on to the new file after each rotation: no copy holds much more than
    # the limit (a writer that kept its old file would fill one with nearly everything).
    total = sum(p.stat().st_size for p in logs.glob("fte.jsonl*"))
    largest = max(p.stat().st_size for p in logs.glob("fte.jsonl*"))
    assert largest < 10 * limits.max_bytes < total / 2
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for path in logs.glob("fte.jsonl*"):
        for line in path.read_text().splitlines():
            record = json.loads(line)  # never a torn or interleaved line
            seen[record["writer"]].append(record["n"])
    assert {name: sorted(ns) for name, ns in seen.items()} == {
        "a": list(range(lines)),
        "b": list(range(lines)),
    }


def test_the_settings_give_the_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fte.config import load_settings

    monkeypatch.setenv("FTE_LOG_MAX_MB", "0.5")
    monkeypatch.setenv("FTE_LOG_BACKUPS", "7")
    assert load_settings().log_limits == LogLimits(max_bytes=512 * 1024, backups=7)
    monkeypatch.setattr(log_files, "_limits", LogLimits())
    log_files.configure(LogLimits(max_bytes=10, backups=1))  # what fte.cli does with them
    (tmp_path / "fte.jsonl").write_text("x" * 11)
    assert rotate(tmp_path) == ["fte.jsonl"]  # the configured limit, not the default 20 MB


def test_a_worker_rotates_at_each_retention_sweep_even_with_retention_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker on an external sidecar has no stack owner to rotate its log.
    from fte.client import ResearchClient
    from fte.retention import Retention

    monkeypatch.setattr(log_files, "_limits", SMALL)
    logs = tmp_path / "logs"
    logs.mkdir()
    now = [0.0]
    retention = Retention(tmp_path, keep_days=0, embedded=True, every_s=60, clock=lambda: now[0])
    no_client = cast(ResearchClient, None)  # retention off: the sweep asks the engine nothing
    for _ in range(2):
        (logs / "fte.jsonl").write_text("x" * 1000)
        assert retention.sweep_if_due(no_client) == []
    assert (logs / "fte.jsonl.1").exists() and (logs / "fte.jsonl").exists()  # one sweep due
    now[0] = 61.0
    retention.sweep_if_due(no_client)
    assert (logs / "fte.jsonl.2").exists() and not (logs / "fte.jsonl").exists()
