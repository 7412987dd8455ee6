"""A total deadline and a size limit for one HTTP exchange on an httpx client.

httpx's timeouts bound each socket operation, not the exchange: a server that sends a
byte every few seconds resets the read timeout with each one and can hold a call for ever.
`exchange()` adds what httpx cannot express:

- a deadline for the whole exchange (connect, request, headers, body). When it passes, a
  watchdog timer shuts the exchange's socket down, which wakes a read blocked in the kernel
  at once; every socket operation is also capped at the time left, and the body is checked
  between chunks (which is what bounds transports without sockets: respx, in-process apps);
- a limit on the response body, checked against Content-Length and while reading, so an
  oversized answer is refused without being buffered.

`install(client)` adds them to a client through public httpx/httpcore seams: request and
response event hooks, and httpcore's `trace` and `network_stream` extensions, which say
which socket an exchange uses. They apply to requests sent from a thread inside
`with exchange(...)`; other requests on the same client are untouched. The watchdog knows
the socket of a connection opened for the exchange and of a response being read; a
reused keep-alive connection that stalls before its headers arrive is bounded by the
capped read timeout instead, which is why `LLMClient` makes its own client without
keep-alive.

The errors are deliberately not httpx errors: SDKs that wrap httpx (openai) turn those into
their own connection errors, and these must reach the caller as what they are.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx


class ExchangeLimitExceeded(Exception):
    """An exchange overran one of its limits."""


class DeadlineExceeded(ExchangeLimitExceeded):
    def __init__(self, deadline_s: float) -> None:
        super().__init__(f"no complete response within {deadline_s:g} s")
        self.deadline_s = deadline_s


class ResponseTooLarge(ExchangeLimitExceeded):
    def __init__(self, limit: int) -> None:
        super().__init__(f"response body larger than {limit:,} bytes")
        self.limit = limit


class Exchange:
    """The limits of one exchange, and the sockets its watchdog may shut."""

    def __init__(self, deadline_s: float, max_response_bytes: int) -> None:
        self.deadline_s = deadline_s
        self.max_response_bytes = max_response_bytes
        self._ends_at = time.monotonic() + deadline_s
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._fired = False
        self._finished = False

    @property
    def expired(self) -> bool:
        return self._fired or time.monotonic() >= self._ends_at

    def remaining(self) -> float:
        return max(0.0, self._ends_at - time.monotonic())

    def check(self) -> None:
        if self.expired:
            raise DeadlineExceeded(self.deadline_s)

    def watch(self, sock: object) -> None:
        """Shut `sock` down if the deadline passes before the exchange finishes."""
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self._finished:
                return
            self._sockets.append(sock)
            if self._fired:
                _shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self._finished:
                return
            self._fired = True
            for sock in self._sockets:
                _shutdown(sock)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
            self._sockets.clear()


def _shutdown(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked in recv() on the same socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_current = threading.local()


@contextlib.contextmanager
def exchange(deadline_s: float, max_response_bytes: int) -> Iterator[Exchange]:
    """Apply these limits to the requests this thread sends inside the block."""
    limits = Exchange(deadline_s, max_response_bytes)
    watchdog = threading.Timer(deadline_s, limits.fire)
    watchdog.daemon = True
    outer = getattr(_current, "exchange", None)
    _current.exchange = limits
    watchdog.start()
    try:
        yield limits
    finally:
        watchdog.cancel()
        limits.finish()
        _current.exchange = outer


def _active() -> Exchange | None:
    limits = getattr(_current, "exchange", None)
    return limits if isinstance(limits, Exchange) else None


def install(client: httpx.Client) -> None:
    """Make `client` honour `exchange()` limits (idempotent)."""
    hooks = client.event_hooks
    if _on_request in hooks.get("request", []):
        return
    client.event_hooks = {
        "request": [*hooks.get("request", []), _on_request],
        "response": [*hooks.get("response", []), _on_response],
    }


_TIMEOUT_KINDS = ("connect", "read", "write", "pool")
# httpcore trace events whose return value is the stream a new connection talks over.
_CONNECTED = ("connection.connect_tcp.complete", "connection.start_tls.complete")


def _on_request(request: httpx.Request) -> None:
    limits = _active()
    if limits is None:
        return
    limits.check()
    remaining = limits.remaining()
    timeouts = dict(request.extensions.get("timeout", {}))
    for kind in _TIMEOUT_KINDS:
        configured = timeouts.get(kind)
        timeouts[kind] = remaining if configured is None else min(configured, remaining)
    request.extensions["timeout"] = timeouts
    request.extensions["trace"] = _tracer(limits, request.extensions.get("trace"))


def _tracer(
    limits: Exchange, outer: Callable[[str, dict[str, Any]], None] | None
) -> Callable[[str, dict[str, Any]], None]:
    def trace(event: str, info: dict[str, Any]) -> None:
        if event in _CONNECTED:
            limits.watch(_socket_of(info.get("return_value")))
        if outer is not None:
            outer(event, info)

    return trace


def _socket_of(stream: object) -> object:
    get_extra_info = getattr(stream, "get_extra_info", None)
    return get_extra_info("socket") if callable(get_extra_info) else None


def _on_response(response: httpx.Response) -> None:
    limits = _active()
    if limits is None:
        return
    limits.watch(_socket_of(response.extensions.get("network_stream")))
    limits.check()
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > limits.max_response_bytes:
        raise ResponseTooLarge(limits.max_response_bytes)
    if isinstance(response.stream, httpx.SyncByteStream):
        response.stream = _LimitedStream(response.stream, limits)


class _LimitedStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, limits: Exchange) -> None:
        self._inner = inner
        self._limits = limits

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        for chunk in self._inner:
            received += len(chunk)
            if received > self._limits.max_response_bytes:
                raise ResponseTooLarge(self._limits.max_response_bytes)
            self._limits.check()
            yield chunk

    def close(self) -> None:
        self._inner.close()
