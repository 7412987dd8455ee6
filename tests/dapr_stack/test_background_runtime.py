"""BackgroundRuntime: the stack `fte research` starts while it finishes its imports."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from fte.dapr_stack import BackgroundRuntime, http_ok, live_stack, read_record
from fte.errors import RuntimeSetupError, UsageError
from tests.support.processes import pid_alive, wait_for


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
        assert all(pid_alive(pid) for pid in record.pids.values())
    assert live_stack(data_dir) is None
    wait_for(
        lambda: not any(pid_alive(pid) for pid in record.pids.values()),
        f"the stack's processes {record.pids} to end with the block",
        timeout=10,
    )


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
