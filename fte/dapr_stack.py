"""Find or launch the Dapr runtime the workflows run on.

Resolution order:

1. An already-running sidecar (`DAPR_GRPC_ENDPOINT` or `DAPR_GRPC_PORT` set, as
   under `dapr run` or on Kubernetes): connect to it and launch nothing.
2. Otherwise launch an embedded stack — placement, scheduler and daprd — from
   `FTE_DAPRD`, a `dapr init --slim` install, or the project's own build, on
   loopback ports, with `components/local/` and a data directory that holds the
   SQLite actor store, the scheduler's etcd data, logs and the stack record.

One launcher owns a data directory at a time (an advisory `flock` on its
`stack.lock`). A second launcher on the same directory attaches to the running
stack, or refuses with a clear message when that stack is unhealthy. Processes
left by a launcher that crashed are found through the stack record and stopped
before a new start.

Ownership is bound to the directory itself, never inferred from a file that may
have been copied: the lock is on this directory's file, the record names the
directory's device and inode (a `cp -a` copy has others, so its copied record is
ignored), and a recorded process is signalled only if /proc shows it runs the
recorded executable *in this directory* (its working directory and data-dir
arguments).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from fte import api_tokens, locks, log_files, package_path, sidecar_env
from fte.dapr_build import SidecarBinaries, find_binaries
from fte.errors import DataDirInUseError, RuntimeSetupError
from fte.intervals import Interval
from fte.layout import APP_ID as APP_ID
from fte.layout import LOCK_FILE as LOCK_FILE
from fte.layout import STACK_RECORD as STACK_RECORD
from fte.stall_watch import StallWatch, connected_workers

log = structlog.get_logger(__name__)

DEFAULT_COMPONENTS_DIR = package_path("components", "local")
PORTS_RECORD = "ports.json"
READY_TIMEOUT_S = 60.0
# Even fast-forwarded, the scheduler's etcd still waited one to ten 100 ms ticks for its
# election on every start, cold or warm, and daprd is healthy only once the scheduler
# serves: starts took 0.45-0.9 s at random. A single member has no peer to hear from, so
# short ticks cost nothing; 10 ms ticks and a 50 ms election bound that wait at 50 ms
# (the shortest etcd allows is five ticks). The flags come from our patch
# (sidecar/patches/scheduler-etcd-election-timeout.patch): upstream binaries lack them.
_ETCD_ELECTION_FLAGS = ("--etcd-heartbeat-interval", "10", "--etcd-election-timeout", "50")
# Dapr's defaults suit a server: etcd keeps the last million revisions of the jobs (about
# 12,500 research runs at 80 revisions each, ~800 MB of bbolt file, which never shrinks)
# and ten 64 MB WAL files. Dapr's cron library only watches the newest revisions and
# rebuilds its queue if a watch falls behind a compaction, so the embedded stack (and
# `fte up --replicas`) keeps two minutes of history and two WAL files: 80 MB and two WAL
# files after 5,000 runs at full load (README, Performance).
ETCD_FOOTPRINT_FLAGS = (
    "--etcd-compaction-mode", "periodic",
    "--etcd-compaction-retention", "2m",
    "--etcd-max-wals", "2",
)  # fmt: skip
# How often a starting process's health endpoint is asked; each ask is one loopback request.
_HEALTH_POLL_S = 0.01
STOP_GRACE_S = 10.0
# Liveness: how often the owner looks at its processes and an attached process at the
# owner, how many restarts of one role a minute are mended before giving up, and how long
# an attached process waits for an owner's stack to answer again before saying so.
SUPERVISE_INTERVAL_S = 0.5
OWNER_CHECK_INTERVAL_S = 1.0
MAX_RESTARTS_PER_MINUTE = 3
ATTACHED_PATIENCE_S = 30.0

Port = Annotated[int, Field(ge=1, le=65535)]
Role = Literal["placement", "scheduler", "daprd"]

# Ports are remembered per data directory because the scheduler's embedded etcd
# records its peer URL on first boot; restarting it on other ports works but
# leaves etcd advertising a dead address.
_PORT_NAMES = (
    "placement",
    "placement_healthz",
    "placement_raft",
    "scheduler",
    "scheduler_healthz",
    "scheduler_etcd_client",
    "scheduler_etcd_peer",
    "daprd_grpc",
    "daprd_http",
    "daprd_internal_grpc",
)


class StackRecord(BaseModel):
    """`stack.json`: the stack one launcher runs for one data directory."""

    model_config = ConfigDict(frozen=True)

    data_dir: str
    """The directory as its owner named it (for messages)."""
    data_dir_id: tuple[int, int]
    """The directory's device and inode. A copy has others, so a record copied along with a
    directory is never taken for the copy's own."""
    owner_pid: Annotated[int, Field(gt=0)]
    ready: bool
    ports: dict[str, Port]
    pids: dict[Role, Annotated[int, Field(gt=0)]]
    executables: dict[Role, str]
    binaries: str = ""

    @field_validator("ports")
    @classmethod
    def _every_port(cls, ports: dict[str, int]) -> dict[str, int]:
        missing = [name for name in _PORT_NAMES if name not in ports]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        return ports


_PORTS_FILE = TypeAdapter(dict[str, Port])


def _dir_id(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return (status.st_dev, status.st_ino)


def _problem(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def read_record(data_dir: Path) -> StackRecord | None:
    """This directory's stack record, if there is one; a malformed one is an error.

    A record written for another directory (copied with it) is not this one's: None.
    """
    path = Path(data_dir) / STACK_RECORD
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise RuntimeSetupError(f"cannot read {path}: {exc}") from None
    try:
        record = StackRecord.model_validate_json(text)
    except ValidationError as exc:
        raise RuntimeSetupError(
            f"{path} is not a stack record fte wrote ({_problem(exc)}); if no fte command "
            f"is using {data_dir}, delete the file and try again"
        ) from None
    if record.data_dir_id != _dir_id(path.parent):
        log.debug("ignoring a stack record copied from another directory", origin=record.data_dir)
        return None
    return record


def read_ports(data_dir: Path) -> dict[str, int]:
    """The ports remembered for this directory ({} if none); a malformed file is an error."""
    path = Path(data_dir) / PORTS_RECORD
    try:
        return _PORTS_FILE.validate_json(path.read_bytes())
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise RuntimeSetupError(f"cannot read {path}: {exc}") from None
    except ValidationError as exc:
        raise RuntimeSetupError(
            f"{path} is not a ports record fte wrote ({_problem(exc)}); delete it and fte "
            "picks new ports"
        ) from None


@dataclass(frozen=True)
class RuntimeEndpoint:
    """How clients reach the sidecar. host/port None means: use DAPR_* env settings."""

    host: str | None
    grpc_port: int | None
    http_port: int | None
    owned: bool
    description: str
    health: Callable[[], str | None] | None = field(default=None, compare=False, repr=False)
    """What is wrong with the runtime that its launcher could not mend (None: nothing known)."""
    api_token: str | None = field(default=None, compare=False, repr=False)
    """The embedded sidecar's DAPR_API_TOKEN (`fte.api_tokens`); None for an external sidecar,
    whose token the SDK reads from DAPR_API_TOKEN itself."""

    @property
    def grpc_address(self) -> str | None:
        if self.host is None or self.grpc_port is None:
            return None
        return f"{self.host}:{self.grpc_port}"

    def problem(self) -> str | None:
        return self.health() if self.health is not None else None


def external_endpoint() -> RuntimeEndpoint | None:
    """The sidecar named by the environment (dapr run, Kubernetes), if any."""
    problem = sidecar_env.problem()
    if problem is not None:
        raise RuntimeSetupError(problem)
    endpoint = os.environ.get("DAPR_GRPC_ENDPOINT")
    port = sidecar_env.port("DAPR_GRPC_PORT")
    if not endpoint and port is None:
        return None
    http_port = sidecar_env.port("DAPR_HTTP_PORT")
    if endpoint:
        return RuntimeEndpoint(
            host=None,
            grpc_port=None,
            http_port=http_port,
            owned=False,
            description=f"external sidecar at DAPR_GRPC_ENDPOINT={endpoint}",
        )
    host = os.environ.get("DAPR_RUNTIME_HOST", "127.0.0.1")
    return RuntimeEndpoint(
        host=host,
        grpc_port=port,
        http_port=http_port,
        owned=False,
        description=f"external sidecar at {host}:{port}",
    )


_REACH_TIMEOUT_S = 3.0


def check_reachable(endpoint: RuntimeEndpoint) -> None:
    """Fail in seconds, with what to do, when nothing listens at an external sidecar's port.

    Otherwise the SDK's clients wait a minute on a dead port before failing.
    """
    if endpoint.host is None or endpoint.grpc_port is None:
        return  # DAPR_GRPC_ENDPOINT: the SDK parses it (scheme, TLS); it reports itself
    try:
        socket.create_connection((endpoint.host, endpoint.grpc_port), _REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise RuntimeSetupError(
            f"no Dapr sidecar answers at {endpoint.host}:{endpoint.grpc_port} "
            f"(DAPR_GRPC_PORT): {exc.strerror or exc}; start it (dapr run ...) or unset "
            "DAPR_GRPC_PORT to use the embedded runtime"
        ) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited child that nobody reaped yet (a zombie) is gone for our purposes.
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


# Arguments of the runtime processes that name a path inside their data directory.
_DATA_DIR_FLAGS = ("--etcd-data-dir", "--identity-directory-write")


def _runs_in(pid: int, executable: str, data_dir: Path) -> bool:
    """True when `pid` runs `executable` for `data_dir`: never signal anything else.

    A recorded pid may since have been reused by another program, or belong to the stack of
    another data directory (a copied record). Launched processes run in their data
    directory and the scheduler names it in its arguments; /proc shows both.
    """
    try:
        argv = [
            arg.decode(errors="replace")
            for arg in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        ]
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    if not argv or argv[0] != executable or cwd != data_dir:
        return False
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag in _DATA_DIR_FLAGS and not Path(value).is_relative_to(data_dir):
            return False
    return True


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


# What the Dapr processes may see of our environment. An allow-list, not a deny-list: the
# launcher's environment holds the LLM key (OPENAI_API_KEY, a key in OPENAI_BASE_URL) and
# whatever other credentials the user exported, and the embedded stack needs none of them.
# DAPR_* stays: daprd reads DAPR_API_TOKEN (and its other settings) from there.
_RUNTIME_ENV_NAMES = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE",
        "SSL_CERT_FILE", "SSL_CERT_DIR", "NAMESPACE",
        "GOMAXPROCS", "GOMEMLIMIT", "GOGC", "GODEBUG", "GOTRACEBACK",
    }
)  # fmt: skip
_RUNTIME_ENV_PREFIXES = ("LC_", "DAPR_")


def runtime_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment placement, scheduler and daprd are started with."""
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if name in _RUNTIME_ENV_NAMES or name.startswith(_RUNTIME_ENV_PREFIXES)
    }


_PR_SET_PDEATHSIG = 1


def record_ports(path: Path, names: Iterable[str], remembered: dict[str, int]) -> dict[str, int]:
    """A distinct loopback port for each name, the remembered one while it is still free
    (so a restart keeps its addresses), written to `path` for the next start."""
    ports: dict[str, int] = {}
    for name in names:
        port = remembered.get(name)
        if port is None or port in ports.values() or not port_is_free(port):
            port = free_port()
            while port in ports.values():
                port = free_port()
        ports[name] = port
    path.write_text(json.dumps(ports, indent=2))
    return ports


def wait_healthy(
    popen: subprocess.Popen[bytes],
    url: str,
    *,
    name: str,
    log_path: Path,
    role: str | None = None,
) -> None:
    """Poll `url` until it answers 2xx; fail at once, pointing at the log, if the process
    exits first, or after READY_TIMEOUT_S. `role` names it in the timeout message when
    that reads better than its process name."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeSetupError(
                f"{name} exited with code {popen.returncode} during start-up; see {log_path}"
            )
        if http_ok(url):
            return
        time.sleep(_HEALTH_POLL_S)
    raise RuntimeSetupError(
        f"{role or name} was not healthy after {READY_TIMEOUT_S:.0f}s; see {log_path}"
    )


def die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when the launcher dies.

    This is what keeps a SIGKILLed launcher from leaving orphans; the stack
    record covers the rare case where it still happens (e.g. a PID namespace).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_SETPRIV = shutil.which("setpriv")


def orphan_proof(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    """The command line and pre-exec hook that make a child die with its launcher.

    util-linux's `setpriv --pdeathsig` sets PR_SET_PDEATHSIG and execs the command, so no
    Python runs between fork and exec and subprocess can use vfork. A fork()ed child of
    this multi-threaded, gRPC-using process once aborted in gRPC's event engine before it
    reached exec (daprd "exited with code -6 during start-up", its log holding only gRPC's
    `epoll_wait error: Bad file descriptor`). Without setpriv, prctl runs in a pre-exec
    hook as before.
    """
    if _SETPRIV is not None:
        return [_SETPRIV, "--pdeathsig", "TERM", "--", *argv], None
    return argv, die_with_parent


@dataclass
class _Proc:
    role: Role
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes]
    argv: list[str]


@dataclass
class EmbeddedStack:
    """placement + scheduler + daprd on loopback, owned by this process."""

    data_dir: Path
    components_dir: Path = DEFAULT_COMPONENTS_DIR
    config_file: Path | None = None
    binaries: SidecarBinaries | None = None
    app_id: str = APP_ID
    log_level: str = "info"
    attach_timeout_s: float = READY_TIMEOUT_S
    _procs: list[_Proc] = field(default_factory=list, init=False)
    daprd_env: dict[str, str] = field(default_factory=dict, repr=False)
    """Extra environment for daprd only: the FTE_SECRET_* values its components read
    (`fte.backends`), never inherited from the launcher's environment."""
    supervise: bool = True
    """Watch the stack while it is used: restart a role that dies (owner), take the stack
    over when its owner dies (attached)."""
    extra_flags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Flags appended to a role's command line (role -> flags), none unless given: how
    benchmarks/profile_throughput.py turns on daprd's pprof server and tries other settings."""
    _lock: locks.FileLock | None = field(default=None, init=False)
    _ports: dict[str, int] = field(default_factory=dict, init=False)
    _binaries: SidecarBinaries | None = field(default=None, init=False)
    _group: int = field(default=0, init=False)
    _watcher: threading.Thread | None = field(default=None, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)
    _problem: str | None = field(default=None, init=False)
    _restarts: dict[str, list[float]] = field(default_factory=dict, init=False)
    # Why the last restart of a role failed to start a process, until one starts.
    _restart_failures: dict[str, str] = field(default_factory=dict, init=False)
    _stall: StallWatch | None = field(default=None, init=False)
    endpoint: RuntimeEndpoint | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        self.components_dir = Path(self.components_dir).resolve()
        if self.config_file is None:
            self.config_file = self.components_dir / "config.yaml"

    # -- public API ------------------------------------------------------

    def start(self) -> RuntimeEndpoint:
        """Start the stack, or attach to the one already serving this data directory."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.components_dir.is_dir():
            raise RuntimeSetupError(f"components directory {self.components_dir} does not exist")
        # Malformed records are one-line errors before anything is locked or started.
        read_record(self.data_dir)
        read_ports(self.data_dir)
        deadline = time.monotonic() + self.attach_timeout_s
        self._stopping.clear()
        while not self._acquire_lock():
            attached = self._attach(deadline)
            if attached is not None:
                self._watch(self._watch_owner)
                return attached
            # The owner exited meanwhile (its lock is free): take over the directory.
        try:
            self._launch_owned()
        except BaseException:
            self.stop()
            raise
        self._watch(self._supervise)
        assert self.endpoint is not None
        return self.endpoint

    def _launch_owned(self) -> None:
        """Holding the lock: stop leftovers, start the stack, record it, say where it is."""
        self._stop_stale()
        binaries = self._binaries = self.binaries or find_binaries()
        self._ports = self._choose_ports()
        api_tokens.prepare(self.data_dir)
        started = time.monotonic()
        log_files.rotate(self.data_dir / "logs")
        self._launch(binaries)
        self._write_record(binaries, ready=False)
        self._wait_http("daprd", f"http://127.0.0.1:{self._ports['daprd_http']}/v1.0/healthz")
        self._write_record(binaries, ready=True)
        log.info(
            "dapr stack ready",
            data_dir=str(self.data_dir),
            grpc_port=self._ports["daprd_grpc"],
            seconds=round(time.monotonic() - started, 2),
            binaries=binaries.origin,
        )
        self.endpoint = RuntimeEndpoint(
            host="127.0.0.1",
            grpc_port=self._ports["daprd_grpc"],
            http_port=self._ports["daprd_http"],
            owned=True,
            description=f"embedded Dapr stack in {self.data_dir}",
            health=self.problem,
            api_token=api_tokens.current_token(self.data_dir),
        )

    def problem(self) -> str | None:
        """What is wrong with the stack that supervision could not mend, if anything."""
        return self._problem

    def stop(self) -> None:
        """Stop daprd first (it drains workflow work), then scheduler and placement."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=READY_TIMEOUT_S)
        self._watcher = None
        for proc in reversed(self._procs):
            self._terminate(proc)
        self._procs.clear()
        if self._lock is not None and self._lock.held:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / STACK_RECORD).unlink()
            self._lock.release()

    def __enter__(self) -> RuntimeEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._ports)

    @property
    def owner(self) -> bool:
        return self._lock is not None and self._lock.held

    # -- ownership -------------------------------------------------------

    def _acquire_lock(self) -> bool:
        if self._lock is None:
            self._lock = locks.FileLock(self.data_dir / LOCK_FILE)
        return self._lock.acquire(patience_s=0.1)

    def _attach(self, deadline: float) -> RuntimeEndpoint | None:
        """Another launcher owns the directory: reuse its stack once it is healthy.

        Returns None when that owner has gone away, so the caller can take over.
        """
        record = None
        while time.monotonic() < deadline:
            record = read_record(self.data_dir)
            if record and _serving(record):
                self.endpoint = RuntimeEndpoint(
                    host="127.0.0.1",
                    grpc_port=record.ports["daprd_grpc"],
                    http_port=record.ports["daprd_http"],
                    owned=False,
                    description=(
                        f"embedded Dapr stack in {self.data_dir} (owned by pid {record.owner_pid})"
                    ),
                    health=self.problem,
                    api_token=api_tokens.current_token(self.data_dir),
                )
                return self.endpoint
            if record is None or not _pid_alive(record.owner_pid):
                # No record yet (owner still starting) or the owner is gone: if the
                # lock is free now, the caller takes over.
                if self._lock_is_free():
                    return None
            time.sleep(0.1)
        owner = record.owner_pid if record else "unknown"
        raise DataDirInUseError(
            f"data directory {self.data_dir} is locked by another fte process (pid {owner}) "
            "whose Dapr runtime is not healthy; stop that process or choose another --data-dir"
        )

    def _lock_is_free(self) -> bool:
        return not locks.is_held(self.data_dir / LOCK_FILE)

    def _stop_stale(self) -> None:
        """Stop processes a crashed launcher left behind (we hold the lock, so none is live).

        Only processes that run in this directory: a record copied from another directory
        is not read at all (`read_record`), and a recorded pid must still run the recorded
        executable here.
        """
        record = read_record(self.data_dir)
        if not record:
            (self.data_dir / STACK_RECORD).unlink(missing_ok=True)  # none, or not ours
            return
        stale = [
            (role, pid)
            for role, pid in record.pids.items()
            if _runs_in(pid, record.executables.get(role, ""), self.data_dir)
        ]
        for role, pid in stale:
            log.warning("stopping stale runtime process", role=role, pid=pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for _role, pid in stale:
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        (self.data_dir / STACK_RECORD).unlink(missing_ok=True)

    def _record_for(
        self,
        *,
        owner_pid: int,
        ready: bool,
        pids: Mapping[Role, int],
        executables: Mapping[Role, str],
        ports: Mapping[str, int] | None = None,
        binaries: str = "",
    ) -> StackRecord:
        return StackRecord(
            data_dir=str(self.data_dir),
            data_dir_id=_dir_id(self.data_dir),
            owner_pid=owner_pid,
            ready=ready,
            ports=dict(self._ports if ports is None else ports),
            pids=dict(pids),
            executables=dict(executables),
            binaries=binaries,
        )

    def _write_record(self, binaries: SidecarBinaries, *, ready: bool) -> None:
        record = self._record_for(
            owner_pid=os.getpid(),
            ready=ready,
            pids={p.role: p.popen.pid for p in self._procs},
            executables={
                "placement": str(binaries.placement),
                "scheduler": str(binaries.scheduler),
                "daprd": str(binaries.daprd),
            },
            binaries=binaries.origin,
        )
        tmp = self.data_dir / (STACK_RECORD + ".tmp")
        tmp.write_text(record.model_dump_json(indent=2))
        tmp.replace(self.data_dir / STACK_RECORD)

    # -- liveness --------------------------------------------------------

    def _watch(self, loop: Callable[[], None]) -> None:
        if not self.supervise:
            return

        def watching() -> None:
            try:
                loop()
            except Exception as exc:  # noqa: BLE001 - becomes the stack's users' one-line error
                # Ended unseen, the watch would leave the worker and the commands waiting on
                # a runtime that nobody mends (a data directory deleted under them, say).
                self._problem = (
                    f"watching the Dapr runtime of {self.data_dir} failed "
                    f"({type(exc).__name__}: {exc})"
                )
                log.error(self._problem)

        self._watcher = threading.Thread(target=watching, name="fte-stack-watch", daemon=True)
        self._watcher.start()

    def _supervise(self) -> None:
        """Owner: a runtime process that dies is restarted on its ports, a few times a minute;
        the logs are rotated past their limit every minute.

        Its clients (this process's worker and the commands attached to the stack) reconnect
        to the same ports by themselves. The thread that starts a process must outlive it
        (PR_SET_PDEATHSIG is per thread), which this loop does until `stop()`.
        """
        rotation = Interval(log_files.ROTATION_INTERVAL_S)
        while not self._stopping.wait(SUPERVISE_INTERVAL_S):
            for proc in list(self._procs):
                code = proc.popen.poll()
                if code is not None and not self._stopping.is_set():
                    self._recover(proc, code)
            self._mend_stall()
            if rotation.due():
                log_files.rotate(self.data_dir / "logs")

    def _mend_stall(self) -> None:
        """Restart a daprd caught in its work-stream deadlock (`fte.stall_watch` says why)."""
        daprd = next((p for p in self._procs if p.role == "daprd"), None)
        if daprd is None or self._stall is None or self._stopping.is_set():
            return
        if daprd.popen.poll() is not None or not self._stall.stalled():
            return
        log.warning(
            f"the Dapr daprd (pid {daprd.popen.pid}) accepted a worker's stream but hands it no "
            "work (daprd 1.18.2 deadlock after a worker died); restarting it",
            log=str(self.data_dir / "logs" / "daprd.log"),
        )
        self._terminate(daprd)
        # Then as for a daprd that died: restarted on its ports, within the restart budget.
        self._recover(daprd, daprd.popen.wait())

    def _recover(self, proc: _Proc, code: int) -> None:
        role = proc.role
        log_path = self.data_dir / "logs" / f"{role}.log"
        now = time.monotonic()
        recent = [t for t in self._restarts.get(role, []) if now - t < 60]
        reason = exit_reason(code)
        if len(recent) >= MAX_RESTARTS_PER_MINUTE:
            if self._problem is None:
                failure = self._restart_failures.get(role)
                what = (
                    f"the Dapr {role} exited ({reason}) and cannot be started again ({failure})"
                    if failure is not None
                    else f"the Dapr {role} keeps exiting ({reason}, {len(recent) + 1} times "
                    "in a minute)"
                )
                self._problem = (
                    f"{what}; see {log_path}; runs are saved and continue once `fte worker` "
                    "runs on a healthy runtime"
                )
                log.error(self._problem)
            return
        self._restarts[role] = [*recent, now]
        log.warning(
            f"the Dapr {role} (pid {proc.popen.pid}) exited ({reason}); restarting it",
            log=str(log_path),
        )
        try:
            try:
                restarted = self._spawn(role, proc.argv, self._group)
            except OSError:  # the stack's process group is gone with its last member
                restarted = self._spawn(role, proc.argv, 0)
                self._group = restarted.popen.pid
        except Exception as exc:  # noqa: BLE001 - reported, and retried on the next round
            # The dead process stays listed, so the next round tries again, within the
            # budget; past it, this is the problem the worker and the commands report (a
            # missing data directory, a full disk, a sidecar binary gone from the cache).
            self._restart_failures[role] = f"{type(exc).__name__}: {exc}"
            log.error(f"starting the Dapr {role} again failed: {exc}")
            return
        self._restart_failures.pop(role, None)
        proc.log_file.close()
        self._procs.remove(proc)
        try:
            self._wait_http(role, self._health_url(role))
            assert self._binaries is not None
            self._write_record(self._binaries, ready=True)
        except Exception as exc:  # noqa: BLE001 - reported, and retried on the next round
            log.error(f"restarting the Dapr {role} failed: {exc}")
            return
        log.warning(f"the Dapr {role} is back (pid {restarted.popen.pid})")

    def _health_url(self, role: Role) -> str:
        p = self._ports
        if role == "daprd":
            return f"http://127.0.0.1:{p['daprd_http']}/v1.0/healthz"
        return f"http://127.0.0.1:{p[role + '_healthz']}/healthz"

    def _watch_owner(self) -> None:
        """Attached: notice at once when the owner dies, and take the stack over.

        The owner's stack dies with it (PR_SET_PDEATHSIG). Taking over relaunches it on the
        remembered ports, so this process's clients and worker reconnect where they were.
        """
        unhealthy_since: float | None = None
        while not self._stopping.wait(OWNER_CHECK_INTERVAL_S):
            if self._lock_is_free():
                self._take_over()
                if self.owner:
                    self._supervise()
                    return
                if self._problem:
                    return  # the takeover failed: said once, not retried every second
                continue
            try:
                record = read_record(self.data_dir)
            except RuntimeSetupError:
                record = None
            endpoint = self.endpoint
            if record is not None and endpoint is not None and _serving(record):
                unhealthy_since = None
                moved = (record.ports["daprd_grpc"], record.ports["daprd_http"]) != (
                    endpoint.grpc_port,
                    endpoint.http_port,
                )
                self._problem = (
                    f"the Dapr runtime of {self.data_dir} moved to other ports; run the "
                    "command again"
                    if moved
                    else None
                )
                continue
            unhealthy_since = unhealthy_since or time.monotonic()
            if time.monotonic() - unhealthy_since > ATTACHED_PATIENCE_S and not self._problem:
                owner = record.owner_pid if record else "unknown"
                self._problem = (
                    f"the Dapr runtime of {self.data_dir} (run by pid {owner}) has not answered "
                    f"for {ATTACHED_PATIENCE_S:.0f} s; see {self.data_dir / 'logs'}"
                )
                log.error(self._problem)

    def _take_over(self) -> None:
        previous = self.endpoint
        owner = "unknown"
        with contextlib.suppress(RuntimeSetupError):
            record = read_record(self.data_dir)
            owner = str(record.owner_pid) if record else owner
        if not self._acquire_lock():
            return  # another attached process took it over first
        log.warning(
            f"the process that ran the Dapr runtime of {self.data_dir} (pid {owner}) is gone; "
            "taking it over"
        )
        try:
            self._launch_owned()
        except Exception as exc:  # noqa: BLE001 - becomes the command's one-line error
            for proc in reversed(self._procs):
                self._terminate(proc)
            self._procs.clear()
            if self._lock is not None:
                self._lock.release()
            self._problem = f"taking over the Dapr runtime of {self.data_dir} failed: {exc}"
            log.error(self._problem)
            return
        if previous is not None and self.endpoint is not None:
            if (previous.grpc_port, previous.http_port) != (
                self.endpoint.grpc_port,
                self.endpoint.http_port,
            ):
                self._problem = (
                    f"the Dapr runtime of {self.data_dir} had to move to other ports; run the "
                    "command again"
                )
                log.error(self._problem)
                return
        log.warning(f"the Dapr runtime of {self.data_dir} runs again, owned by this process")

    # -- launching -------------------------------------------------------

    def _choose_ports(self) -> dict[str, int]:
        return record_ports(self.data_dir / PORTS_RECORD, _PORT_NAMES, read_ports(self.data_dir))

    def _spawn(self, role: Role, argv: list[str], process_group: int) -> _Proc:
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_file = (logs / f"{role}.log").open("ab")
        log_file.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {role}\n".encode())
        log_file.flush()
        if role == "daprd":
            # Watch this daprd's lines only: the log is appended to across restarts.
            metadata = f"http://127.0.0.1:{self._ports['daprd_http']}/v1.0/metadata"
            self._stall = StallWatch(
                logs / "daprd.log",
                lambda: connected_workers(metadata, api_tokens.current_token(self.data_dir)),
                offset=log_file.tell(),
            )
        env = runtime_environment()
        # One thread runs Go code in daprd and the scheduler unless the environment says
        # otherwise: they share the machine's cores with the worker, and with Go's default
        # (GOMAXPROCS = cores) the stack spent 12-16% more CPU per workflow activity under
        # 50 runs at once on a busy machine (4% on a quieter one), alternating in one run
        # of benchmarks/profile_throughput.py (stack start unchanged). Not placement: it
        # idles, and with 1 the first workflow after a start waited 2 s more often.
        if role != "placement":
            env.setdefault("GOMAXPROCS", "1")
        if role == "daprd":
            # The directory's tokens (when required), never a DAPR_API_TOKEN the user
            # exported for another sidecar: every client of this stack reads the same file.
            env.pop("DAPR_API_TOKEN", None)
            env.update(api_tokens.daprd_environment(self.data_dir))
            env.update(self.daprd_env)
        popen = self._popen(argv, log_file, process_group, env)
        proc = _Proc(role, popen, log_file, argv)
        self._procs.append(proc)
        return proc

    def _popen(
        self, argv: list[str], log_file: IO[bytes], process_group: int, env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        command, pre_exec = orphan_proof(argv)
        return subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            process_group=process_group,
            preexec_fn=pre_exec,  # noqa: PLW1509 - only calls prctl, and only without setpriv
        )

    def _launch(self, binaries: SidecarBinaries) -> None:
        p = self._ports
        lo = "127.0.0.1"
        placement = self._spawn(
            "placement",
            [
                str(binaries.placement),
                "--port", str(p["placement"]),
                "--listen-address", lo,
                "--healthz-port", str(p["placement_healthz"]),
                "--healthz-listen-address", lo,
                "--initial-cluster", f"dapr-placement-0={lo}:{p['placement_raft']}",
                "--enable-metrics=false",
                "--log-level", self.log_level,
                *self.extra_flags.get("placement", ()),
            ],
            process_group=0,
        )  # fmt: skip
        # One process group for the whole stack, so `kill -- -PGID` stops all of it.
        group = self._group = placement.popen.pid
        self._spawn(
            "scheduler",
            [
                str(binaries.scheduler),
                "--port", str(p["scheduler"]),
                "--listen-address", lo,
                "--healthz-port", str(p["scheduler_healthz"]),
                "--healthz-listen-address", lo,
                "--etcd-data-dir", str(self.data_dir / "scheduler"),
                "--etcd-client-port", str(p["scheduler_etcd_client"]),
                "--etcd-client-listen-address", lo,
                "--etcd-initial-cluster",
                f"dapr-scheduler-server-0=http://{lo}:{p['scheduler_etcd_peer']}",
                # A restarted single-member etcd replaying its log alone waited out a full
                # election timeout, 1-2 s, which made a warm start three times slower than
                # a cold one. So: snapshot every few entries (a raft snapshot of membership,
                # not of the jobs, which stay in the backend), and fast-forward the election
                # ticks on boot.
                "--etcd-snapshot-count", "5",
                "--etcd-initial-election-tick-advance",
                *ETCD_FOOTPRINT_FLAGS,
                *(_ETCD_ELECTION_FLAGS if binaries.patched else ()),
                "--identity-directory-write", str(self.data_dir / "identity"),
                "--enable-metrics=false",
                "--log-level", self.log_level,
                *self.extra_flags.get("scheduler", ()),
            ],
            process_group=group,
        )  # fmt: skip
        self._wait_http("placement", f"http://{lo}:{p['placement_healthz']}/healthz")
        self._wait_http("scheduler", f"http://{lo}:{p['scheduler_healthz']}/healthz")
        self._spawn(
            "daprd",
            [
                str(binaries.daprd),
                "--app-id", self.app_id,
                "--mode", "standalone",
                "--dapr-grpc-port", str(p["daprd_grpc"]),
                "--dapr-http-port", str(p["daprd_http"]),
                "--dapr-internal-grpc-port", str(p["daprd_internal_grpc"]),
                "--dapr-listen-addresses", lo,
                "--dapr-internal-grpc-listen-address", lo,
                "--placement-host-address", f"{lo}:{p['placement']}",
                "--scheduler-host-address", f"{lo}:{p['scheduler']}",
                "--resources-path", str(self.components_dir),
                "--config", str(self.config_file),
                "--enable-metrics=false",
                "--log-level", self.log_level,
                # In-flight work is durable, so a bounded drain is enough on stop.
                "--dapr-graceful-shutdown-seconds", "5",
                *self.extra_flags.get("daprd", ()),
            ],
            process_group=group,
        )  # fmt: skip

    def _wait_http(self, role: str, url: str) -> None:
        proc = next(p for p in self._procs if p.role == role)
        wait_healthy(proc.popen, url, name=role, log_path=self.data_dir / "logs" / f"{role}.log")

    def _terminate(self, proc: _Proc) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGTERM)
            try:
                proc.popen.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("runtime process ignored SIGTERM; killing it", role=proc.role)
                proc.popen.kill()
                proc.popen.wait()
        proc.log_file.close()


def exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _serving(record: StackRecord) -> bool:
    """The recorded stack finished starting and its daprd answers its health check."""
    health = f"http://127.0.0.1:{record.ports['daprd_http']}/v1.0/healthz"
    return record.ready and http_ok(health)


def live_stack(data_dir: Path) -> StackRecord | None:
    """The record of a healthy stack a live owner serves from `data_dir`, if any.

    The owner must hold this directory's lock: a record alone proves nothing.
    """
    record = read_record(data_dir)
    if record is None or not _pid_alive(record.owner_pid):
        return None
    if not locks.is_held(Path(data_dir) / LOCK_FILE):
        return None
    return record if _serving(record) else None


@contextlib.contextmanager
def dapr_runtime(data_dir: Path) -> Iterator[RuntimeEndpoint]:
    """Yield an endpoint: the external sidecar if the environment names one, else our own stack."""
    external = external_endpoint()
    if external is not None:
        check_reachable(external)
        yield external
        return
    stack = EmbeddedStack(data_dir=data_dir)
    with stack as endpoint:
        yield endpoint


class BackgroundRuntime:
    """`dapr_runtime` begun on a thread now and used once the command asks for `endpoint()`.

    A command with imports and set-up still to do (`fte research`: the pipeline and the
    openai package, ~0.7 s of CPU) does them while daprd starts, instead of first waiting
    ~0.1 s for daprd's health. The thread that started the stack also stops it, and lives
    until then: the kernel's parent-death signal that keeps a killed launcher from leaving
    orphans follows the thread that spawned a process, not the process.
    """

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._ready = threading.Event()
        self._release = threading.Event()
        self._endpoint: RuntimeEndpoint | None = None
        self._error: BaseException | None = None
        self._error_seen = False
        self._thread = threading.Thread(target=self._own, name="fte-runtime-start")

    def __enter__(self) -> BackgroundRuntime:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._release.set()
        self._thread.join()
        # An error the command has not seen (stopping failed, or it never asked for the
        # endpoint) surfaces here, unless the command is already failing for its own reason.
        if self._error is not None and not self._error_seen and exc_type is None:
            raise self._error

    def endpoint(self) -> RuntimeEndpoint:
        """The runtime's endpoint once it serves; the start's error if it failed."""
        self._ready.wait()
        if self._error is not None:
            self._error_seen = True
            raise self._error
        assert self._endpoint is not None
        return self._endpoint

    def _own(self) -> None:
        try:
            with dapr_runtime(self._data_dir) as endpoint:
                self._endpoint = endpoint
                self._ready.set()
                self._release.wait()
        except BaseException as exc:  # handed to the command's thread by endpoint()
            self._error = exc
        finally:
            self._ready.set()
