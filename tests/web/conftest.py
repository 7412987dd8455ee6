"""Web tests: every HTTP request is mocked by respx except those a test lets through to its
own local HTTP server, which records every request that reaches it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import respx

# A documentation address (TEST-NET-3 is not global, so a public-looking one is used):
# the fake resolver maps test host names to it and respx answers for it.
PUBLIC_IP = "93.184.216.34"


@dataclass
class LocalServer:
    """An HTTP server on 127.0.0.1 that the fetcher must never reach."""

    port: int
    paths: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def local_server() -> Iterator[LocalServer]:
    server_state: LocalServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_state.paths.append(self.path)
            body = b"internal secret"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_state = LocalServer(port=server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield server_state
    server.shutdown()
    server.server_close()


@pytest.fixture
def http_mock(local_server: LocalServer) -> Iterator[respx.MockRouter]:
    """Unmocked requests fail, except to the local server: those really go out, so a
    fetcher that wrongly allowed one would be caught by the server's request log."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        router.route(host="127.0.0.1", port=local_server.port).pass_through()
        yield router
