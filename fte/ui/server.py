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
import ssl
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


def base_url(host: str, port: int, *, tls: bool = False) -> str:
    shown = "127.0.0.1" if host in _ALL_INTERFACES else host
    scheme = "https" if tls else "http"
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"


def check_tls_files(cert: Path | None, key: Path | None) -> None:
    """Load the certificate and key as the server will, before anything starts: a missing
    file, an encrypted key or a key of another certificate is a one-line error."""
    if cert is None:
        if key is not None:
            raise UsageError("--tls-key needs --tls-cert (the certificate it belongs to)")
        return
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=_no_password
        )
    except FileNotFoundError as exc:
        raise UsageError(f"--tls-cert/--tls-key: no such file: {exc.filename}") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        raise UsageError(
            f"--tls-cert {cert}: cannot use it with {f'--tls-key {key}' if key else 'its key'} "
            f"({reason}); give a PEM certificate and its unencrypted PEM key"
        ) from None


def _no_password() -> str:
    # An encrypted key would make OpenSSL prompt on the terminal; refuse it instead.
    raise ValueError("the key is encrypted")


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
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    check_tls_files(tls_cert, tls_key)
    tls = tls_cert is not None
    sock = listen(host, port)
    port = sock.getsockname()[1]
    if host in _ALL_INTERFACES:
        plain = " Plain HTTP: the token crosses the network unencrypted (see --tls-cert)."
        say(
            f"WARNING: --host {host or '0.0.0.0'} serves the console to every network this "
            "machine is on; anyone with the token can approve, reject and cancel runs."
            + ("" if tls else plain)
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
        url = base_url(host, port, tls=tls)

        def closing() -> bool:
            # Set by uvicorn's own signal handlers while it serves (and by ours before):
            # open pages' event streams end, since uvicorn waits for every response.
            return server.should_exit

        config = ConsoleConfig(
            token=token,
            hosts=hosts,
            scorecard=scorecard,
            baseline=baseline,
            served=served,
            closing=closing,
        )
        app = create_app(client, config)
        client.store.set_ui_address(url)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                lifespan="off",
                ssl_certfile=tls_cert,
                ssl_keyfile=tls_key,
            )
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
