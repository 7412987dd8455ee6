"""The request deadline against a real socket: a loopback server that trickles or goes silent.

respx never blocks in a socket read, so this module runs a small HTTP server of its own on
127.0.0.1 (the unit suite's socket guard is lifted here, and only loopback traffic passes
respx). Each byte the server sends would reset a read timeout; the deadline must still cut
the exchange off, and the server must see its connection closed.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest
import respx
from pydantic import SecretStr

from fte.errors import LLMDeadlineError
from fte.llm import LLMClient, LLMConfig
from tests.unit.conftest import API_KEY

DEADLINE_S = 0.5
TRICKLE_INTERVAL_S = 0.05


@pytest.fixture
def no_sockets() -> None:
    """Overrides the unit suite's socket guard: this module's server is on loopback."""


class _Handler(socketserver.BaseRequestHandler):
    server: _TrickleServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        _read_request(conn)
        mode = self.server.mode
        try:
            if mode == "body":
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100000\r\n\r\n{"
                )
            elif mode == "headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            if mode == "silent":
                conn.settimeout(10)
                conn.recv(1)  # returns b"" once the client shuts the connection
            else:
                while not self.server.stopping.is_set():
                    time.sleep(TRICKLE_INTERVAL_S)
                    conn.sendall(b" ")
        except OSError:
            pass
        self.server.closed_at = time.monotonic()


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)


class _TrickleServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = mode
        self.stopping = threading.Event()
        self.closed_at: float | None = None


@pytest.fixture(params=["body", "headers", "silent"])
def server(request: pytest.FixtureRequest, http_mock: respx.MockRouter) -> Iterator[_TrickleServer]:
    http_mock.route(host="127.0.0.1").pass_through()
    srv = _TrickleServer(request.param)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.stopping.set()
    srv.shutdown()
    srv.server_close()


def test_a_trickling_or_silent_server_is_cut_off_near_the_deadline(server: _TrickleServer) -> None:
    port = server.server_address[1]
    config = LLMConfig(
        api_key=SecretStr(API_KEY),
        base_url=f"http://127.0.0.1:{port}/v1",
        timeout_s=30,  # the read timeout alone would wait far longer than the deadline
        request_deadline_s=DEADLINE_S,
        attempt_deadline_s=DEADLINE_S,
    )

    started = time.monotonic()
    with LLMClient(config) as llm, pytest.raises(LLMDeadlineError) as caught:
        llm.structured(agent="tester", model="m", system="s", user="u", output_model=LLMConfig)
    elapsed = time.monotonic() - started

    assert DEADLINE_S <= elapsed < DEADLINE_S + 0.5, elapsed
    assert caught.value.attempts == 1
    deadline = time.monotonic() + 2
    while server.closed_at is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.closed_at is not None, "the connection was left open"
    assert server.closed_at - started < DEADLINE_S + 1.0
