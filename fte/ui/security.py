"""The console's access rules: a token on every request, CSRF on every change, strict headers.

Anyone who can reach the port could approve or cancel runs, and a page of any other site
open in the same browser can send requests to 127.0.0.1, so:

- Every request needs the random token `fte ui` printed (`?token=` once, then a cookie that
  is HttpOnly and SameSite=Strict, and Secure over TLS, or `Authorization: Bearer`). The
  URL with the token is answered with a redirect to the same page without it, so it does
  not linger in history.
- The Host header must name the address the console serves (or a loopback name for a
  loopback console): a DNS-rebinding page gets a 403 even with a cookie it cannot have.
- A state-changing request (POST) also needs a CSRF token derived from the access token,
  which only pages of the console carry, and an Origin, when the browser sends one, of
  the console itself.
- Responses carry a Content-Security-Policy with no inline script and no remote load, so a
  missed escape still could not run code or send data away.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_PREFIX = "fte_ui_"
CSRF_FIELD = "csrf"
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def cookie_name(access_token: str) -> str:
    """The cookie's name differs per console: cookies ignore ports, so two consoles on one
    host would otherwise overwrite each other's cookie and sign each other out."""
    return COOKIE_PREFIX + hashlib.sha256(access_token.encode()).hexdigest()[:12]


def csrf_token(access_token: str) -> str:
    """A value that only the console's own pages carry (derived, so nothing to store)."""
    return hmac.new(access_token.encode(), b"fte-ui-csrf", hashlib.sha256).hexdigest()


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """Host header values the console answers: its address, and loopback names if loopback."""
    names = {host if ":" not in host else f"[{host}]"}
    if host in ("127.0.0.1", "::1", "localhost"):
        names.update(_LOOPBACK_NAMES)
    return frozenset(f"{name}:{port}" for name in names)


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class CsrfError(Exception):
    """A state-changing request without the console's CSRF token or from another origin."""


def check_csrf(request: Request, form_value: object, access_token: str) -> None:
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
        raise CsrfError("request from another origin")
    if not isinstance(form_value, str) or not _same(form_value, csrf_token(access_token)):
        raise CsrfError("missing or wrong CSRF token; reload the page and try again")


class TokenGate:
    """ASGI middleware: host check, token check (query, cookie or bearer), security headers."""

    def __init__(self, app: ASGIApp, *, token: str, hosts: Iterable[str]) -> None:
        self.app = app
        self.token = token
        self.cookie = cookie_name(token)
        self.hosts = frozenset(hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if self.hosts and headers.get("host") not in self.hosts:
            await _refuse(send, 403, "fte ui: unexpected Host header; open the URL fte ui printed")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if _same(query.get("token"), self.token):
            # Trade the URL's token for a cookie and drop it from the address bar.
            rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
            location = scope["path"] + (f"?{rest}" if rest else "")
            await _redirect_with_cookie(
                send, location, self.token, secure=scope.get("scheme") == "https"
            )
            return
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:
            cookie = SimpleCookie()
        given = cookie[self.cookie].value if self.cookie in cookie else None
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = bearer[7:].strip()
        if not _same(given, self.token):
            await _refuse(
                send,
                403,
                "fte ui: this console needs its access token; open the URL that `fte ui` "
                "printed (it ends in ?token=...)",
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _harden(MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _harden(headers: MutableHeaders) -> None:
    if "content-security-policy" not in headers:
        headers["Content-Security-Policy"] = PAGE_CSP
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "same-origin"  # "no-referrer" makes form posts say Origin: null
    headers["Cache-Control"] = "no-store"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    headers["Cross-Origin-Resource-Policy"] = "same-origin"


async def _refuse(send: Send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    headers = MutableHeaders(
        {"content-type": "text/plain; charset=utf-8", "content-length": str(len(body))}
    )
    _harden(headers)
    await send({"type": "http.response.start", "status": status, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})


async def _redirect_with_cookie(send: Send, location: str, token: str, *, secure: bool) -> None:
    headers = MutableHeaders({"location": location, "content-length": "0"})
    cookie = f"{cookie_name(token)}={token}; Path=/; HttpOnly; SameSite=Strict"
    if secure:  # served over TLS: the browser never sends the token over plain HTTP
        cookie += "; Secure"
    headers.append("set-cookie", cookie)
    _harden(headers)
    await send({"type": "http.response.start", "status": 303, "headers": headers.raw})
    await send({"type": "http.response.body", "body": b""})
