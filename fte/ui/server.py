"""`fte ui`: serve the web console on one port until Ctrl-C or SIGTERM.

Like Jupyter, it prints a URL with a random access token; the console refuses any request
without it (`fte.ui.security`). The token is never logged (uvicorn's access log, which
would record the URL, is off) and never stored; the state store keeps only the console's
base URL, so a worker can put a link to the run's page in an approval notice.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import uvicorn

from fte import package_path
from fte.client import ResearchClient
from fte.config import FteSettings
from fte.dapr_stack import dapr_runtime
from fte.errors import UsageError
from fte.serving import ensure_worker, worker_needed
from fte.ui.app import ConsoleConfig, create_app
from fte.ui.security import allowed_hosts, new_token

_ALL_INTERFACES = ("0.0.0.0", "::", "")


def listen(host: str, port: int) -> socket.socket:
    """The console's socket, bound before anything starts (a busy port is a usage error)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: use 0-65535 (0 picks a free port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except socket.gaierror:
        sock.close()
        raise UsageError(f"--host {host} is not an address of this machine") from None
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"--host {host} is not an address of this machine") from None
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"--port {port}: in use; choose another (or 0 for a free one)"
            ) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in _ALL_INTERFACES else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def scorecard_paths(settings: FteSettings) -> tuple[Path, Path]:
    """The latest scorecard (`fte eval`'s default output) and the committed baseline."""
    return (
        settings.out_dir / "eval" / "scorecard.json",
        package_path("evals", "data") / "baseline.json",
    )


def run_ui(
    settings: FteSettings,
    *,
    host: str,
    port: int,
    say: Callable[[str], None],
    show_url: Callable[[str], None],
) -> None:
    sock = listen(host, port)
    port = sock.getsockname()[1]
    if host in _ALL_INTERFACES:
        say(
            f"WARNING: --host {host or '0.0.0.0'} serves the console to every network this "
            "machine is on; anyone with the token can approve, reject and cancel runs. "
            "Plain HTTP: the token crosses the network unencrypted."
        )
    token = new_token()
    data_dir = settings.data_dir
    hosts = allowed_hosts(host if host not in _ALL_INTERFACES else "127.0.0.1", port)
    if host in _ALL_INTERFACES:
        hosts = frozenset()  # any Host: the console is reached by names this cannot know

    @contextlib.contextmanager
    def served() -> Iterator[None]:
        # The CLI's rule: a lease first, so the worker cannot idle out meanwhile.
        with worker_needed(data_dir):
            ensure_worker(data_dir, offline=settings.offline, say=say)
            yield

    scorecard, baseline = scorecard_paths(settings)
    with (
        contextlib.closing(sock),
        dapr_runtime(data_dir) as endpoint,
        ResearchClient(endpoint) as client,
    ):
        url = base_url(host, port)
        config = ConsoleConfig(
            token=token, hosts=hosts, scorecard=scorecard, baseline=baseline, served=served
        )
        app = create_app(client, config)
        client.store.set_ui_address(url)
        server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        )
        # SIGTERM and Ctrl-C are the ways to stop it: both end it cleanly (exit 0), like serve.
        for stop in (signal.SIGTERM, signal.SIGINT):
            signal.signal(stop, lambda *_: setattr(server, "should_exit", True))
        say(f"fte ui: serving {endpoint.description}; Ctrl-C stops it. Open:")
        show_url(f"{url}/runs?token={token}")
        try:
            server.run(sockets=[sock])
        finally:
            # Another console started on this data directory since owns the address now.
            with contextlib.suppress(Exception):
                if client.store.ui_address() == url:
                    client.store.set_ui_address(None)
    say("fte ui: stopped")
