"""Read-only commands on a data directory whose runtime is not running start nothing.

`fte status <unknown>`, `fte list` of an empty directory, `fte report`/`watch` of an unknown
run: the run index in the SQLite state store answers them (`fte.stored_runs`). A known run
still starts the runtime and is answered by the engine, as before.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fte.artifacts import ArtifactStore
from fte.dapr_clients import close_dapr_client, dapr_client
from fte.dapr_stack import EmbeddedStack
from fte.layout import STACK_RECORD
from tests.cli.test_cli import _env
from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.engine


def fte(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fte", *args],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fresh_directory_is_answered_without_creating_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    status = fte("status", "nosuch", "--data-dir", str(data_dir))
    assert status.returncode == 4
    assert status.stderr.strip() == "fte: error: no research task with ID 'nosuch'"

    listing = fte("list", "--data-dir", str(data_dir))
    assert listing.returncode == 0, listing.stderr
    assert "No runs yet" in listing.stderr

    report = fte("report", "nosuch", "--out", str(tmp_path / "out"), "--data-dir", str(data_dir))
    assert report.returncode == 4
    assert not data_dir.exists()  # no runtime was started, so nothing was written


def test_idle_directory_with_runs_refuses_unknown_ids_without_starting(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # A real runtime writes the index entry of a run, then stops.
    with EmbeddedStack(data_dir=data_dir) as endpoint:
        client = dapr_client(endpoint)
        try:
            ArtifactStore(client).update_index(
                lambda index: index["runs"].update(
                    {"known-run": {"query": "q", "corpus": "c", "created_at": "2026-01-01"}}
                )
            )
        finally:
            close_dapr_client(client)
    # Every start of the runtime writes daprd's log.
    daprd_log = data_dir / "logs" / "daprd.log"
    before = daprd_log.stat().st_mtime_ns

    status = fte("status", "nosuch", "--data-dir", str(data_dir))
    assert status.returncode == 4
    assert status.stderr.strip() == "fte: error: no research task with ID 'nosuch'"
    watch = fte("watch", "nosuch", "--data-dir", str(data_dir))
    assert watch.returncode == 4
    assert "background worker" not in watch.stderr

    assert daprd_log.stat().st_mtime_ns == before
    assert not (data_dir / STACK_RECORD).exists()

    # A known run is the engine's to answer: the runtime starts, finds no such workflow
    # (only its index entry was written) and says so the same way.
    known = fte("status", "known-run", "--data-dir", str(data_dir))
    assert known.returncode == 4, known.stderr
    assert daprd_log.stat().st_mtime_ns != before


# What a read-only command must not import: the model client, the Dapr SDK, gRPC. They are
# most of a command's start-up time (README "Performance": `fte status <unknown>`).
_HEAVY = ("openai", "httpx", "tenacity", "dapr", "grpc", "aiohttp")


@pytest.mark.parametrize(
    "args", [["status", "nosuch"], ["list"]], ids=["status-unknown", "list-empty"]
)
def test_idle_reads_import_no_client_library(tmp_path: Path, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fte", *args, "--data-dir", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "fte" in imported, result.stderr[-2000:]
    assert sorted(imported & set(_HEAVY)) == []
