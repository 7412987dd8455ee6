"""BackgroundRuntime: the stack `fte research` starts while it finishes its imports."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from fte.dapr_stack import BackgroundRuntime, http_ok, live_stack, read_record
from fte.errors import RuntimeSetupError, UsageError


def _dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.engine
def test_stack_serves_until_the_block_ends_then_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with BackgroundRuntime(data_dir) as runtime:
        endpoint = runtime.endpoint()
        record = read_record(data_dir)
        assert record is not None and endpoint.owned
        # The thread that spawned daprd must outlive its start: daprd gets the kernel's
        # parent-death signal as soon as that thread ends, and would be gone by now.
        time.sleep(1.0)
        assert http_ok(f"http://127.0.0.1:{endpoint.http_port}/v1.0/healthz")
        assert all(not _dead(pid) for pid in record.pids.values())
    assert live_stack(data_dir) is None
    deadline = time.monotonic() + 10
    while not all(_dead(pid) for pid in record.pids.values()):
        assert time.monotonic() < deadline, f"stack processes outlived the block: {record.pids}"
        time.sleep(0.05)


def _unreachable_sidecar(monkeypatch: pytest.MonkeyPatch) -> int:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = int(closed.getsockname()[1])  # nothing listens there once closed
    monkeypatch.delenv("DAPR_GRPC_ENDPOINT", raising=False)
    monkeypatch.setenv("DAPR_GRPC_PORT", str(port))
    return port


def test_start_error_is_raised_by_endpoint_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _unreachable_sidecar(monkeypatch)
    with BackgroundRuntime(tmp_path / "data") as runtime:  # leaving must not raise it again
        with pytest.raises(RuntimeSetupError, match=f"no Dapr sidecar answers at 127.0.0.1:{port}"):
            runtime.endpoint()


def test_start_error_never_asked_for_is_raised_on_leaving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unreachable_sidecar(monkeypatch)
    with pytest.raises(RuntimeSetupError), BackgroundRuntime(tmp_path / "data"):
        pass


def test_the_commands_own_error_wins_over_the_start_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unreachable_sidecar(monkeypatch)
    with pytest.raises(UsageError, match="bad input"), BackgroundRuntime(tmp_path / "data"):
        raise UsageError("bad input")
