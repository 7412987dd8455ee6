"""The launcher: attach, ownership, orphan and stale-process handling, runtime discovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fte import dapr_build
from fte.dapr_build import find_binaries
from fte.dapr_stack import (
    STACK_RECORD,
    EmbeddedStack,
    RuntimeEndpoint,
    dapr_runtime,
    external_endpoint,
)
from fte.errors import DataDirInUseError, SidecarBuildError
from tests.support import PROJECT_ROOT
from tests.support.processes import wait_for

# A stand-in for a leftover runtime process: its /proc cmdline starts with sys.executable.
_SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(300)"]


def _start_sleeper() -> subprocess.Popen[str]:
    """Start it and wait until it has exec'd (before that, /proc shows pytest's cmdline)."""
    proc = subprocess.Popen(_SLEEPER, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    status = Path(f"/proc/{pid}/status").read_text()
    return "State:\tZ" not in status


@pytest.mark.engine
def test_second_launcher_on_same_data_dir_attaches(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()) as first:
        second = EmbeddedStack(data_dir=data_dir)
        attached = second.start()
        assert first.owned and not attached.owned
        assert attached.grpc_port == first.grpc_port
        assert attached.http_port == first.http_port
        # Stopping the attached launcher must leave the owner's stack running.
        second.stop()
        record = json.loads((data_dir / STACK_RECORD).read_text())
        assert all(_alive(pid) for pid in record["pids"].values())


@pytest.mark.engine
def test_killed_launcher_leaves_no_orphans_and_data_dir_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "fte", "up", "--data-dir", str(data_dir)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def ready() -> bool:
            try:
                return bool(json.loads((data_dir / STACK_RECORD).read_text()).get("ready"))
            except (FileNotFoundError, json.JSONDecodeError):
                return False

        wait_for(ready, "the launcher's stack to become ready")
        pids = json.loads((data_dir / STACK_RECORD).read_text())["pids"]
        assert set(pids) == {"placement", "scheduler", "daprd"}
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        wait_for(
            lambda: not any(_alive(pid) for pid in pids.values()),
            "the runtime processes to exit after their launcher died",
            timeout=30,
        )
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    # The stale record is still there; a new launcher takes over cleanly.
    with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()) as endpoint:
        assert endpoint.owned


def test_stale_processes_of_a_crashed_launcher_are_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sleeper = _start_sleeper()
    try:
        (data_dir / STACK_RECORD).write_text(
            json.dumps(
                {
                    "owner_pid": 999999,
                    "ready": True,
                    "ports": {},
                    "pids": {"daprd": sleeper.pid},
                    "executables": {"daprd": sys.executable},
                }
            )
        )
        stack = EmbeddedStack(data_dir=data_dir)
        assert stack._acquire_lock()
        stack._stop_stale()
        assert sleeper.wait(timeout=15) == -signal.SIGTERM
        assert not (data_dir / STACK_RECORD).exists()
        stack.stop()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_stale_record_never_kills_an_unrelated_process_that_reused_the_pid(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    bystander = _start_sleeper()
    try:
        (data_dir / STACK_RECORD).write_text(
            json.dumps({"pids": {"daprd": bystander.pid}, "executables": {"daprd": "/x/daprd"}})
        )
        stack = EmbeddedStack(data_dir=data_dir)
        assert stack._acquire_lock()
        stack._stop_stale()
        stack.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_locked_data_dir_with_unhealthy_stack_is_refused_clearly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,os,sys,time;"
            f"fd=os.open({str(data_dir / 'stack.lock')!r},os.O_RDWR|os.O_CREAT);"
            "fcntl.flock(fd,fcntl.LOCK_EX);print('locked',flush=True);time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        stack = EmbeddedStack(data_dir=data_dir, attach_timeout_s=1.0)
        with pytest.raises(DataDirInUseError, match="locked by another fte process"):
            stack.start()
    finally:
        holder.kill()
        holder.wait()


def test_external_sidecar_from_environment_launches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAPR_GRPC_ENDPOINT", raising=False)
    monkeypatch.setenv("DAPR_GRPC_PORT", "50123")
    monkeypatch.setenv("DAPR_HTTP_PORT", "3599")
    data_dir = tmp_path / "never-created"
    with dapr_runtime(data_dir) as endpoint:
        assert endpoint == RuntimeEndpoint(
            host="127.0.0.1",
            grpc_port=50123,
            http_port=3599,
            owned=False,
            description="external sidecar at 127.0.0.1:50123",
        )
    assert not data_dir.exists()


def test_grpc_endpoint_variable_defers_to_the_sdk_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAPR_GRPC_ENDPOINT", "https://dapr.example.internal:443")
    endpoint = external_endpoint()
    assert endpoint is not None and endpoint.host is None and not endpoint.owned


def test_missing_go_toolchain_gives_actionable_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `go` on it
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.dapr/bin
    monkeypatch.setenv("FTE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FTE_DAPRD", raising=False)
    with pytest.raises(SidecarBuildError) as caught:
        find_binaries()
    message = str(caught.value)
    assert "\n" not in message
    assert "install Go" in message and "FTE_DAPRD" in message


def test_cli_reports_missing_go_without_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),
        "HOME": str(tmp_path),
        "FTE_CACHE_DIR": str(tmp_path / "cache"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "fte", "sidecar", "build"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert result.stderr.startswith("fte: error: Go is not installed")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_fte_daprd_must_name_a_complete_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FTE_DAPRD", str(tmp_path / "daprd"))
    with pytest.raises(SidecarBuildError, match="daprd, placement and scheduler"):
        find_binaries()


def test_wrapper_hash_tracks_every_source_file(tmp_path: Path) -> None:
    module = tmp_path / "sidecar"
    (module / "cmd" / "daprd").mkdir(parents=True)
    (module / "go.mod").write_text("module x\n\nrequire github.com/dapr/dapr v1.18.2\n")
    (module / "go.sum").write_text("")
    main_go = module / "cmd" / "daprd" / "main.go"
    main_go.write_text("package main\n")
    before = dapr_build.wrapper_hash(module)
    assert dapr_build.dapr_version(module) == "v1.18.2"
    main_go.write_text("package main\n// changed\n")
    assert dapr_build.wrapper_hash(module) != before
    (module / "README.md").write_text("docs do not change the binary")
    assert dapr_build.wrapper_hash(module) == dapr_build.wrapper_hash(module)
