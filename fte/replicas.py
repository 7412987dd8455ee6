"""`fte up --replicas N --state URL`: Dapr the way production runs it, on one machine.

One placement, one scheduler, and N replicas, each a daprd sidecar with its own `fte worker`,
all with the same app ID and a shared PostgreSQL or Redis actor state store
(`fte.backends`). Placement spreads the workflow and activity actors over the sidecars; when
a replica dies, its actors move to the others and the scheduler's reminders re-deliver the
work it had in flight, so every run still completes (tests/scale_out/test_replicas.py).

A replica is a pair: a sidecar without its worker would still host actors whose work no one
takes, so when one of the two exits the launcher stops the other and says so; the remaining
replicas carry on. Replicas are not restarted (that is a process manager's or Kubernetes'
job, see deploy/kubernetes/).

Clients reach any sidecar with `DAPR_GRPC_PORT`, `DAPR_HTTP_PORT` and the data directory's
`DAPR_API_TOKEN` (`fte/api_tokens.py`); `<data-dir>/replicas.json` lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import structlog

from fte import api_tokens, locks, log_files
from fte.backends import SECRET_PREFIX, Backends
from fte.dapr_build import SidecarBinaries, find_binaries
from fte.dapr_stack import (
    APP_ID,
    ETCD_FOOTPRINT_FLAGS,
    LOCK_FILE,
    READY_TIMEOUT_S,
    STOP_GRACE_S,
    exit_reason,
    orphan_proof,
    record_ports,
    runtime_environment,
    wait_healthy,
)
from fte.errors import DataDirInUseError, RuntimeSetupError, UsageError
from fte.intervals import Interval

log = structlog.get_logger(__name__)

RECORD = "replicas.json"
PORTS_RECORD = "replica-ports.json"
MAX_REPLICAS = 16
WORKER_READY_LINE = "serving research runs"


@dataclass
class _Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes]
    log_path: Path


@dataclass
class Replica:
    index: int
    grpc_port: int
    http_port: int
    internal_grpc_port: int
    daprd: _Child | None = None
    worker: _Child | None = None
    lost: str | None = None


@dataclass
class ReplicaSet:
    data_dir: Path
    replicas: int
    backends: Backends
    offline: bool = False
    binaries: SidecarBinaries | None = None
    app_id: str = APP_ID
    log_level: str = "info"
    _lock: locks.FileLock | None = field(default=None, init=False)
    _control: list[_Child] = field(default_factory=list, init=False)
    members: list[Replica] = field(default_factory=list, init=False)
    _ports: dict[str, int] = field(default_factory=dict, init=False)
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()
        if not 1 <= self.replicas <= MAX_REPLICAS:
            raise RuntimeSetupError(f"--replicas must be 1-{MAX_REPLICAS}, got {self.replicas}")

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = locks.FileLock(self.data_dir / LOCK_FILE)
        if not self._lock.acquire():
            raise DataDirInUseError(
                f"data directory {self.data_dir} is in use by another fte process; stop it "
                "or choose another --data-dir"
            )
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise

    def _launch(self) -> None:
        binaries = self.binaries or find_binaries()
        tokens = api_tokens.ensure_tokens(self.data_dir)
        ports = self._ports = self._choose_ports()
        lo = "127.0.0.1"
        env = runtime_environment()
        placement = self._spawn(
            "placement",
            [
                str(binaries.placement),
                "--port", str(ports["placement"]), "--listen-address", lo,
                "--healthz-port", str(ports["placement_healthz"]), "--healthz-listen-address", lo,
                "--initial-cluster", f"dapr-placement-0={lo}:{ports['placement_raft']}",
                "--enable-metrics=false", "--log-level", self.log_level,
            ],
            env,
        )  # fmt: skip
        scheduler = self._spawn(
            "scheduler",
            [
                str(binaries.scheduler),
                "--port", str(ports["scheduler"]), "--listen-address", lo,
                "--healthz-port", str(ports["scheduler_healthz"]), "--healthz-listen-address", lo,
                "--etcd-data-dir", str(self.data_dir / "scheduler"),
                "--etcd-client-port", str(ports["scheduler_etcd_client"]),
                "--etcd-client-listen-address", lo,
                "--etcd-initial-cluster",
                f"dapr-scheduler-server-0=http://{lo}:{ports['scheduler_etcd_peer']}",
                *ETCD_FOOTPRINT_FLAGS,
                "--identity-directory-write", str(self.data_dir / "identity"),
                "--enable-metrics=false", "--log-level", self.log_level,
            ],
            env,
        )  # fmt: skip
        self._control = [placement, scheduler]
        self._wait_http(placement, f"http://{lo}:{ports['placement_healthz']}/healthz")
        self._wait_http(scheduler, f"http://{lo}:{ports['scheduler_healthz']}/healthz")
        daprd_env = {**env, **tokens.environment(), **self.backends.daprd_env}
        for index in range(1, self.replicas + 1):
            replica = Replica(
                index,
                grpc_port=ports[f"daprd_{index}_grpc"],
                http_port=ports[f"daprd_{index}_http"],
                internal_grpc_port=ports[f"daprd_{index}_internal_grpc"],
            )
            replica.daprd = self._spawn(
                f"daprd-{index}",
                [
                    str(binaries.daprd),
                    "--app-id", self.app_id, "--mode", "standalone",
                    "--dapr-grpc-port", str(replica.grpc_port),
                    "--dapr-http-port", str(replica.http_port),
                    "--dapr-internal-grpc-port", str(replica.internal_grpc_port),
                    "--dapr-listen-addresses", lo,
                    "--dapr-internal-grpc-listen-address", lo,
                    "--placement-host-address", f"{lo}:{ports['placement']}",
                    "--scheduler-host-address", f"{lo}:{ports['scheduler']}",
                    "--resources-path", str(self.backends.components_dir),
                    "--config", str(self.backends.components_dir / "config.yaml"),
                    "--enable-metrics=false", "--log-level", self.log_level,
                    "--dapr-graceful-shutdown-seconds", "5",
                ],
                daprd_env,
            )  # fmt: skip
            self.members.append(replica)
            if index == 1:
                # The first sidecar creates the state store's tables; several creating them
                # at once on a fresh PostgreSQL database race ("type dapr_metadata already
                # exists") and the losers exit.
                self._wait_http(
                    replica.daprd, f"http://{lo}:{replica.http_port}/v1.0/healthz", "daprd"
                )
        for replica in self.members:
            assert replica.daprd is not None
            self._wait_http(replica.daprd, f"http://{lo}:{replica.http_port}/v1.0/healthz", "daprd")
        for replica in self.members:
            replica.worker = self._start_worker(replica, tokens.dapr)
        for replica in self.members:
            assert replica.worker is not None
            self._wait_worker(replica.worker)
        self._write_record()

    def _start_worker(self, replica: Replica, token: str) -> _Child:
        # Each worker's own FTE_DATA_DIR holds its JSON log; the runs live in the state store.
        home = self.data_dir / "replicas" / str(replica.index)
        home.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "DAPR_GRPC_PORT": str(replica.grpc_port),
            "DAPR_HTTP_PORT": str(replica.http_port),
            "DAPR_API_TOKEN": token,
            "FTE_DATA_DIR": str(home),
        }
        # Workers need no database credentials: those are daprd's alone.
        for name in [*env]:
            if name in ("DAPR_GRPC_ENDPOINT", "FTE_STATE_URL", "FTE_PUBSUB_URL") or name.startswith(
                SECRET_PREFIX
            ):
                del env[name]
        argv = [sys.executable, "-m", "fte", "worker", *(["--offline"] if self.offline else [])]
        return self._spawn(f"worker-{replica.index}", argv, env)

    def stop(self) -> None:
        """Workers first (they drain running activities), then sidecars, then control plane."""
        self._stopping.set()
        children = [r.worker for r in self.members] + [r.daprd for r in self.members]
        for child in [*children, *reversed(self._control)]:
            if child is not None:
                _terminate(child)
        self.members.clear()
        self._control.clear()
        (self.data_dir / RECORD).unlink(missing_ok=True)
        if self._lock is not None and self._lock.held:
            self._lock.release()

    def __enter__(self) -> ReplicaSet:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- watching ----------------------------------------------------------------

    def check(self) -> list[str]:
        """Notice exits since the last call: what to tell the user (one line each).

        A control-plane process that exits is the caller's error; a replica that loses one
        of its two processes is stopped whole and the others carry on.
        """
        for child in self._control:
            code = child.popen.poll()
            if code is not None:
                raise RuntimeSetupError(
                    f"the Dapr {child.name} (pid {child.popen.pid}) exited "
                    f"({exit_reason(code)}); see {child.log_path}"
                )
        said = []
        for replica in self.members:
            if replica.lost is not None:
                continue
            daprd, worker = replica.daprd, replica.worker
            assert daprd is not None and worker is not None
            for child, partner in ((daprd, worker), (worker, daprd)):
                code = child.popen.poll()
                if code is None:
                    continue
                _terminate(partner)
                replica.lost = f"{child.name} (pid {child.popen.pid}) exited ({exit_reason(code)})"
                left = sum(r.lost is None for r in self.members)
                said.append(
                    f"replica {replica.index} is gone: {replica.lost}; its {partner.name} was "
                    f"stopped; {left} of {len(self.members)} replicas serve"
                )
                break
        if said:
            self._write_record()
        if all(r.lost is not None for r in self.members):
            raise RuntimeSetupError(
                "every replica is gone; see the logs in " + str(self.data_dir / "logs")
            )
        return said

    # -- helpers -----------------------------------------------------------------

    def _choose_ports(self) -> dict[str, int]:
        """Remembered per data directory, as the embedded stack's: the scheduler's etcd keeps
        the peer URL of its first start."""
        path = self.data_dir / PORTS_RECORD
        try:
            remembered = {k: int(v) for k, v in json.loads(path.read_text()).items()}
        except (OSError, ValueError, AttributeError):
            remembered = {}
        names = [
            "placement", "placement_healthz", "placement_raft", "scheduler", "scheduler_healthz",
            "scheduler_etcd_client", "scheduler_etcd_peer",
        ]  # fmt: skip
        for index in range(1, self.replicas + 1):
            names += [f"daprd_{index}_{kind}" for kind in ("grpc", "http", "internal_grpc")]
        return record_ports(path, names, remembered)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Child:
        logs = self.data_dir / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{name}.log"
        log_file = log_path.open("ab")
        log_file.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        log_file.flush()
        command, pre_exec = orphan_proof(argv)
        popen = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=pre_exec,  # noqa: PLW1509 - only calls prctl, and only without setpriv
        )
        return _Child(name, popen, log_file, log_path)

    def _wait_http(self, child: _Child, url: str, role: str | None = None) -> None:
        wait_healthy(child.popen, url, name=child.name, log_path=child.log_path, role=role)

    def _wait_worker(self, child: _Child) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise RuntimeSetupError(
                    f"{child.name} exited during start-up; see {child.log_path}"
                )
            if WORKER_READY_LINE in child.log_path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeSetupError(f"{child.name} did not start in time; see {child.log_path}")

    def _write_record(self) -> None:
        record = {
            "placement": {"pid": self._control[0].popen.pid, "port": self._ports["placement"]},
            "scheduler": {"pid": self._control[1].popen.pid, "port": self._ports["scheduler"]},
            "replicas": [
                {
                    "index": r.index,
                    "grpc_port": r.grpc_port,
                    "http_port": r.http_port,
                    "daprd_pid": r.daprd.popen.pid if r.daprd else None,
                    "worker_pid": r.worker.popen.pid if r.worker else None,
                    "worker_data_dir": str(self.data_dir / "replicas" / str(r.index)),
                    "lost": r.lost,
                }
                for r in self.members
            ],
        }
        tmp = self.data_dir / (RECORD + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        tmp.replace(self.data_dir / RECORD)


def _terminate(child: _Child) -> None:
    if child.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            child.popen.send_signal(signal.SIGTERM)
        try:
            child.popen.wait(timeout=STOP_GRACE_S + 15)
        except subprocess.TimeoutExpired:
            log.warning("process ignored SIGTERM; killing it", process=child.name)
            child.popen.kill()
            child.popen.wait()
    if not child.log_file.closed:
        child.log_file.close()


def env_file(data_dir: Path, index: int) -> Path:
    return Path(data_dir) / f"sidecar-{index}.env"


def _write_env_files(replicas: ReplicaSet) -> None:
    """`set -a; . <data-dir>/sidecar-1.env` points `fte` at a sidecar; owner-only, as the
    token file."""
    token = api_tokens.read_tokens(replicas.data_dir).dapr
    for replica in replicas.members:
        path = env_file(replicas.data_dir, replica.index)
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                f"DAPR_GRPC_PORT={replica.grpc_port}\nDAPR_HTTP_PORT={replica.http_port}\n"
                f"DAPR_API_TOKEN={token}\n"
            )


def serve(
    data_dir: Path,
    *,
    replicas: int,
    backends: Backends,
    offline: bool,
    say: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Run the replica set until `stop` is set, telling the user what happens to it."""
    with ReplicaSet(data_dir, replicas, backends, offline=offline) as running:
        _write_env_files(running)
        say(
            f"fte up: {replicas} replica(s) of app {running.app_id} (a daprd sidecar and an "
            f"fte worker each), one placement, one scheduler; state store "
            f"{backends.state_kind}, pub/sub {backends.pubsub_kind}"
        )
        for replica in running.members:
            say(
                f"replica {replica.index}: DAPR_GRPC_PORT={replica.grpc_port} "
                f"DAPR_HTTP_PORT={replica.http_port} (set -a; . "
                f"{env_file(running.data_dir, replica.index)}; set +a)"
            )
        say("submit runs from another shell with those settings: fte research QUERY --detach")
        rotation = Interval(log_files.ROTATION_INTERVAL_S)
        while not stop.wait(1.0):
            for line in running.check():
                say(line)
            if rotation.due():
                log_files.rotate(running.data_dir / "logs")


def cmd_up(args: argparse.Namespace, *, say: Callable[[str], None]) -> int:
    """`fte up --replicas N --state URL [--pubsub URL] [--offline]`."""
    from fte.backends import render

    settings = args.settings
    state = settings.state_url.get_secret_value() if settings.state_url else None
    pubsub = settings.pubsub_url.get_secret_value() if settings.pubsub_url else None
    replicas = 1 if args.replicas is None else args.replicas
    if not 1 <= replicas <= MAX_REPLICAS:
        raise UsageError(f"--replicas must be 1-{MAX_REPLICAS}, got {replicas}")
    if replicas > 1 and not state:
        raise UsageError(
            "--replicas needs a state store every replica shares: --state (or FTE_STATE_URL) "
            "postgres://... or redis://... (the embedded SQLite file is for one sidecar)"
        )
    data_dir = Path(args.settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    backends = render(
        data_dir / "components",
        state_url=state,
        pubsub_url=pubsub,
        # The sidecars trace to the collector the workers export to (fte.tracing), if any.
        tracing_endpoint=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None,
        # Several replicas fail over; see fte.backends for why retention is then left out.
        state_retention=replicas == 1,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve(
            data_dir,
            replicas=replicas,
            backends=backends,
            offline=args.offline or args.settings.offline,
            say=say,
            stop=stop,
        )
    except KeyboardInterrupt:
        pass
    say("fte up: stopped")
    return 0
