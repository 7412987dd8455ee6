"""The scheduler's embedded etcd gets its short election timeout only from binaries built here.

The flags come from `sidecar/patches/scheduler-etcd-election-timeout.patch`; upstream
binaries (`dapr init --slim`, FTE_DAPRD) would refuse them and the stack would not start.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, read_record


def _scheduler_argv(data_dir: Path) -> list[str]:
    record = read_record(data_dir)
    assert record is not None
    raw = Path(f"/proc/{record.pids['scheduler']}/cmdline").read_bytes()
    return raw.rstrip(b"\0").decode().split("\0")


@pytest.mark.engine
def test_patched_scheduler_runs_with_a_short_election_and_serves(tmp_path: Path) -> None:
    binaries = find_binaries()
    if not binaries.patched:
        pytest.skip(f"runtime binaries are not built here ({binaries.origin})")
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, binaries=binaries):
        argv = _scheduler_argv(data_dir)
    assert argv[argv.index("--etcd-heartbeat-interval") + 1] == "10"
    assert argv[argv.index("--etcd-election-timeout") + 1] == "50"
    # Restarted on the same directory (etcd replays its log and snapshot), it serves again.
    with EmbeddedStack(data_dir=data_dir, binaries=binaries):
        assert "--etcd-election-timeout" in _scheduler_argv(data_dir)


@pytest.mark.engine
def test_binaries_not_built_here_get_no_patched_flags(tmp_path: Path) -> None:
    upstream = dataclasses.replace(find_binaries(), patched=False, origin="as if upstream")
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, binaries=upstream):
        argv = _scheduler_argv(data_dir)
    assert "--etcd-election-timeout" not in argv
    assert "--etcd-heartbeat-interval" not in argv
