"""The launcher: attach, ownership, orphan and stale-process handling, runtime discovery."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fte import dapr_build, log_files
from fte.dapr_build import find_binaries
from fte.dapr_stack import (
    MAX_RESTARTS_PER_MINUTE,
    STACK_RECORD,
    EmbeddedStack,
    RuntimeEndpoint,
    dapr_runtime,
    external_endpoint,
    live_stack,
)
from fte.errors import DataDirInUseError, RuntimeSetupError, SidecarBuildError
from fte.log_files import LogLimits
from tests.support import PROJECT_ROOT
from tests.support.processes import LoggedProcess, pid_alive, wait_for

# A stand-in for a leftover runtime process: its /proc cmdline starts with sys.executable.
_SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(300)"]


def _start_sleeper(cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start it and wait until it has exec'd (before that, /proc shows pytest's cmdline)."""
    proc = subprocess.Popen(_SLEEPER, stdout=subprocess.PIPE, text=True, cwd=cwd)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


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
        assert all(pid_alive(pid) for pid in record["pids"].values())


@pytest.mark.engine
def test_an_attached_launcher_whose_directory_is_gone_reports_it(tmp_path: Path) -> None:
    """The owner stops and the data directory has been deleted (a test's tmp_path, an
    `rm -rf`): taking the stack over cannot even open the lock file. That error used to end
    the watching thread silently, and a worker on the attached stack waited for ever."""
    data_dir = tmp_path / "data"
    first = EmbeddedStack(data_dir=data_dir, binaries=find_binaries())
    first.start()
    second = EmbeddedStack(data_dir=data_dir)
    attached = second.start()
    try:
        shutil.rmtree(data_dir)  # the running processes keep their open files
        first.stop()

        wait_for(lambda: attached.problem() is not None, "the attached launcher to say so", 15)
        problem = attached.problem()
        assert problem is not None and str(data_dir) in problem and "\n" not in problem
        assert "FileNotFoundError" in problem, problem
    finally:
        second.stop()
        first.stop()


@pytest.mark.engine
def test_the_owner_keeps_the_runtime_logs_bounded_and_the_runtime_writes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_files, "ROTATION_INTERVAL_S", 0.2)
    monkeypatch.setattr(log_files, "_limits", LogLimits(max_bytes=50_000, backups=2))
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    earlier = b"an earlier stack's line\n" * 5000
    (logs / "daprd.log").write_bytes(earlier)
    with EmbeddedStack(data_dir=tmp_path / "data", binaries=find_binaries()):
        # Past the limit at start: the earlier stack's lines are the first copy.
        assert (logs / "daprd.log.1").read_bytes() == earlier
        started = (logs / "daprd.log").read_bytes()
        assert b"an earlier stack" not in started and started
        # A running daprd's log grows past the limit: rotated within a round.
        with (logs / "daprd.log").open("ab") as log:
            log.write(b"busy\n" * 20_000)
        wait_for(lambda: (logs / "daprd.log.1").read_bytes().startswith(started), "a rotation")
        assert (logs / "daprd.log.2").read_bytes() == earlier
        # daprd goes on writing into the truncated file, from its start: kill the placement
        # service, and daprd logs losing it.
        record = json.loads((tmp_path / "data" / STACK_RECORD).read_text())
        os.kill(record["pids"]["placement"], signal.SIGKILL)
        wait_for(lambda: b"placement" in (logs / "daprd.log").read_bytes(), "daprd to log")
        assert (logs / "daprd.log").stat().st_size < 50_000
        assert not (logs / "daprd.log").read_bytes().startswith(b"\0")


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
            lambda: not any(pid_alive(pid) for pid in pids.values()),
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


def _stale_record(data_dir: Path, pid: int, executable: str = sys.executable) -> None:
    """The record a crashed launcher on `data_dir` leaves: one runtime process, `pid`."""
    stack = EmbeddedStack(data_dir=data_dir)
    record = stack._record_for(
        owner_pid=999999,
        ready=True,
        pids={"daprd": pid},
        executables={"daprd": executable},
        ports=stack._choose_ports(),
    )
    (data_dir / STACK_RECORD).write_text(record.model_dump_json())


def test_stale_processes_of_a_crashed_launcher_are_stopped(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # Launched runtime processes run in their data directory; that is what binds them to it.
    sleeper = _start_sleeper(cwd=data_dir)
    try:
        _stale_record(data_dir, sleeper.pid)
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
    bystander = _start_sleeper(cwd=data_dir)
    try:
        _stale_record(data_dir, bystander.pid, executable="/x/daprd")
        stack = EmbeddedStack(data_dir=data_dir)
        assert stack._acquire_lock()
        stack._stop_stale()
        stack.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_recorded_process_of_another_data_dir_is_never_signalled(tmp_path: Path) -> None:
    # The record is this directory's, but the process runs in another one (a PID reused by
    # another stack's daprd): only a process running in this directory may be stopped.
    data_dir, elsewhere = tmp_path / "data", tmp_path / "other"
    data_dir.mkdir()
    elsewhere.mkdir()
    bystander = _start_sleeper(cwd=elsewhere)
    try:
        _stale_record(data_dir, bystander.pid)
        stack = EmbeddedStack(data_dir=data_dir)
        assert stack._acquire_lock()
        stack._stop_stale()
        stack.stop()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_record_copied_from_another_data_dir_is_ignored(tmp_path: Path) -> None:
    original, copy = tmp_path / "dA", tmp_path / "dB"
    original.mkdir()
    sleeper = _start_sleeper(cwd=original)
    try:
        _stale_record(original, sleeper.pid)
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        stack = EmbeddedStack(data_dir=copy)
        assert stack._acquire_lock()
        stack._stop_stale()  # the copy's record describes dA's processes: hands off
        stack.stop()
        assert sleeper.poll() is None
        assert live_stack(copy) is None
    finally:
        sleeper.kill()
        sleeper.wait()


def _env_without_runtime() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "FTE_DATA_DIR"))}


@pytest.mark.engine
def test_cp_a_of_a_live_data_dir_leaves_the_original_stack_alone(tmp_path: Path) -> None:
    """`cp -a dA dB; fte list --data-dir dB` once sent SIGTERM to dA's stack."""
    original, copy = tmp_path / "dA", tmp_path / "dB"
    owner = LoggedProcess(
        [sys.executable, "-m", "fte", "up", "--data-dir", str(original)],
        tmp_path / "up.log",
        env=_env_without_runtime(),
    )
    try:
        wait_for(lambda: owner.alive() and live_stack(original) is not None, "fte up's stack")
        pids = json.loads((original / STACK_RECORD).read_text())["pids"]
        subprocess.run(["cp", "-a", str(original), str(copy)], check=True)
        assert live_stack(copy) is None  # dA's stack does not serve dB

        listing = subprocess.run(
            [sys.executable, "-m", "fte", "list", "--data-dir", str(copy)],
            cwd=PROJECT_ROOT,
            env=_env_without_runtime(),
            capture_output=True,
            text=True,
            timeout=180,
        )

        assert listing.returncode == 0, listing.stderr
        assert all(pid_alive(pid) for pid in pids.values()), owner.log()
        assert owner.alive() and live_stack(original) is not None
        assert json.loads((original / STACK_RECORD).read_text())["pids"] == pids
    finally:
        owner.stop()


def _recorded_pid(data_dir: Path, role: str) -> int:
    pid: int = json.loads((data_dir / STACK_RECORD).read_text())["pids"][role]
    return pid


def _replaced(data_dir: Path, role: str, old_pid: int) -> Callable[[], bool]:
    return lambda: _recorded_pid(data_dir, role) != old_pid


@pytest.mark.engine
def test_a_role_that_keeps_dying_is_reported_not_restarted_for_ever(tmp_path: Path) -> None:
    stack = EmbeddedStack(data_dir=tmp_path / "data", binaries=find_binaries())
    endpoint = stack.start()
    try:
        for _ in range(MAX_RESTARTS_PER_MINUTE):
            victim = _recorded_pid(stack.data_dir, "scheduler")
            os.kill(victim, signal.SIGKILL)
            wait_for(_replaced(stack.data_dir, "scheduler", victim), "a new scheduler", timeout=60)
            assert endpoint.problem() is None
        os.kill(_recorded_pid(stack.data_dir, "scheduler"), signal.SIGKILL)

        wait_for(lambda: endpoint.problem() is not None, "the launcher to give up", timeout=15)
        problem = endpoint.problem()
        assert problem is not None and "the Dapr scheduler keeps exiting" in problem
        assert "scheduler.log" in problem and "\n" not in problem
    finally:
        stack.stop()


@pytest.mark.engine
def test_a_role_that_cannot_be_started_again_is_reported_not_forgotten(tmp_path: Path) -> None:
    """A restart that cannot even start the process is tried again within the budget, then
    reported. Here its log cannot be opened, as on a full disk or under a deleted data
    directory; the dead role used to drop out of supervision with no problem reported, and
    a worker on the stack waited for ever."""
    stack = EmbeddedStack(data_dir=tmp_path / "data", binaries=find_binaries())
    endpoint = stack.start()
    logs = stack.data_dir / "logs"
    try:
        shutil.rmtree(logs)  # the running processes keep their open log files
        logs.write_text("not a directory")
        os.kill(_recorded_pid(stack.data_dir, "scheduler"), signal.SIGKILL)

        wait_for(lambda: endpoint.problem() is not None, "the launcher to give up", timeout=15)
        problem = endpoint.problem()
        assert problem is not None
        assert "the Dapr scheduler exited (killed by SIGKILL)" in problem, problem
        assert "cannot be started again (FileExistsError" in problem, problem
        assert "\n" not in problem
    finally:
        stack.stop()


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
    # A listening loopback socket stands in for the sidecar's gRPC port.
    with socket.create_server(("127.0.0.1", 0)) as sidecar:
        port = sidecar.getsockname()[1]
        monkeypatch.delenv("DAPR_GRPC_ENDPOINT", raising=False)
        monkeypatch.setenv("DAPR_GRPC_PORT", str(port))
        monkeypatch.setenv("DAPR_HTTP_PORT", "3599")
        data_dir = tmp_path / "never-created"
        with dapr_runtime(data_dir) as endpoint:
            assert endpoint == RuntimeEndpoint(
                host="127.0.0.1",
                grpc_port=port,
                http_port=3599,
                owned=False,
                description=f"external sidecar at 127.0.0.1:{port}",
            )
    assert not data_dir.exists()


def test_external_sidecar_that_is_not_there_fails_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # free again once closed: nothing listens there
    monkeypatch.delenv("DAPR_GRPC_ENDPOINT", raising=False)
    monkeypatch.setenv("DAPR_GRPC_PORT", str(port))
    started = time.monotonic()
    with (
        pytest.raises(RuntimeSetupError, match=f"no Dapr sidecar answers at 127.0.0.1:{port}"),
        dapr_runtime(tmp_path / "never-created"),
    ):
        pass
    assert time.monotonic() - started < 5


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
