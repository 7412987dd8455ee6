"""The console's access rules, on the real app through Starlette's TestClient (no engine).

The app is given a client object that fails on any use: every request here must be decided
by the access rules (or by input checks) before the console would read a run.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import dapr.ext.workflow as wf
import pytest
from dapr.clients import DaprClient
from dapr.clients.health import DaprHealth
from starlette.testclient import TestClient

from fte import package_path
from fte.artifacts import ArtifactStore
from fte.client import ResearchClient
from fte.errors import UsageError
from fte.ui.app import ConsoleConfig, create_app, sse_event
from fte.ui.security import allowed_hosts, cookie_name, csrf_token
from fte.ui.server import base_url, listen

TOKEN = "t0ken-for-tests-only-0123456789abcdef"
COOKIE = cookie_name(TOKEN)
HOST = "127.0.0.1:8765"


class _Untouchable:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the console used its run client ({name}) for this request")


@pytest.fixture
def app_client(tmp_path: Path) -> TestClient:
    card = json.loads((package_path("evals", "data") / "baseline.json").read_text())
    card["suites"][0]["metrics"][0]["description"] = "<script>alert(1)</script> & more"
    (tmp_path / "scorecard.json").write_text(json.dumps(card))
    app = create_app(
        cast(ResearchClient, _Untouchable()),
        ConsoleConfig(
            token=TOKEN,
            hosts=allowed_hosts("127.0.0.1", 8765),
            scorecard=tmp_path / "scorecard.json",
            baseline=package_path("evals", "data") / "baseline.json",
        ),
    )
    return TestClient(app, base_url=f"http://{HOST}", follow_redirects=False)


def _signed_in(client: TestClient) -> TestClient:
    client.cookies.set(COOKIE, TOKEN)
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/runs",
        "/runs/live",
        "/runs/events",
        "/runs/r1",
        "/runs/r1/events",
        "/runs/r1/report",
        "/schedules",
        "/evals",
        "/static/ui.css",
        "/static/ui.js",
        "/no-such-page",
    ],
)
def test_every_path_needs_the_token(app_client: TestClient, path: str) -> None:
    response = app_client.get(path)
    assert response.status_code == 403
    assert "needs its access token" in response.text
    assert TOKEN not in response.text


@pytest.mark.parametrize(
    "how",
    [
        {"params": {"token": "wrong"}},
        {"cookies": {COOKIE: "wrong"}},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"params": {"token": TOKEN[:-1]}},
    ],
    ids=["query", "cookie", "bearer", "prefix"],
)
def test_a_wrong_token_is_refused(app_client: TestClient, how: dict[str, Any]) -> None:
    cookies = how.pop("cookies", None)
    if cookies:
        app_client.cookies.update(cookies)
    assert app_client.get("/evals", **how).status_code == 403


def test_the_token_url_sets_a_strict_cookie_and_drops_the_token(app_client: TestClient) -> None:
    response = app_client.get("/runs", params={"status": "completed", "token": TOKEN})
    assert response.status_code == 303
    assert response.headers["location"] == "/runs?status=completed"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={TOKEN};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never be sent back


def test_over_tls_the_cookie_is_secure(app_client: TestClient) -> None:
    secure = TestClient(app_client.app, base_url=f"https://{HOST}", follow_redirects=False)
    response = secure.get("/runs", params={"token": TOKEN})
    assert response.status_code == 303
    assert "; Secure" in response.headers["set-cookie"]


def test_an_event_is_framed_line_by_line() -> None:
    assert sse_event("fragment", "<p>a</p>\n<p>b</p>") == (
        "event: fragment\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    )
    # A bare carriage return also ends a line in an event stream: it must not end one early.
    assert sse_event("fragment", "x\ry") == "event: fragment\ndata: x\ndata: y\n\n"
    assert sse_event("end", "") == "event: end\ndata: \n\n"


def test_cookie_or_bearer_lets_a_page_through(app_client: TestClient) -> None:
    page = _signed_in(app_client).get("/evals")
    assert page.status_code == 200
    app_client.cookies.clear()
    bearer = app_client.get("/evals", headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_other_host_headers_are_refused_even_with_the_token(app_client: TestClient) -> None:
    _signed_in(app_client)
    for host in ("evil.example:8765", "127.0.0.1:9999", "attacker.test"):
        assert app_client.get("/evals", headers={"Host": host}).status_code == 403
    assert app_client.get("/evals", headers={"Host": "localhost:8765"}).status_code == 200


def test_responses_carry_a_strict_policy(app_client: TestClient) -> None:
    response = _signed_in(app_client).get("/evals")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    refused = app_client.get("/evals", headers={"Host": "evil.example"})
    assert refused.headers["content-security-policy"] == csp


def test_pages_escape_text_and_carry_no_token(app_client: TestClient) -> None:
    page = _signed_in(app_client).get("/evals").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "<script>alert" not in page
    assert TOKEN not in page
    assert re.findall(r"<script[^>]*>", page) == ['<script src="/static/ui.js" defer>']


def test_a_change_needs_the_csrf_token(app_client: TestClient) -> None:
    _signed_in(app_client)
    for data in ({}, {"csrf": "wrong"}, {"csrf": TOKEN}):
        response = app_client.post("/runs/r1/cancel", data=data)
        assert response.status_code == 403, data
        assert "CSRF" in response.text
    response = app_client.post("/schedules/weekly/pause", data={"csrf": "wrong"})
    assert response.status_code == 403


def test_a_change_from_another_origin_is_refused(app_client: TestClient) -> None:
    _signed_in(app_client)
    response = app_client.post(
        "/runs/r1/cancel",
        data={"csrf": csrf_token(TOKEN)},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403
    assert "another origin" in response.text


def test_unknown_actions_and_child_ids_are_refused_before_any_read(
    app_client: TestClient,
) -> None:
    _signed_in(app_client)
    csrf = {"csrf": csrf_token(TOKEN)}
    assert app_client.post("/runs/r1/explode", data=csrf).status_code == 404
    child = app_client.get("/runs/r1.analyst")
    assert child.status_code == 404
    assert "child workflow of run" in child.text
    assert app_client.get("/runs", params={"status": "bogus"}).status_code == 400


def test_each_console_has_its_own_cookie(app_client: TestClient) -> None:
    # Cookies ignore ports: a second console on this host must not sign this one out.
    other = "another-console-token-0123456789abcdef"
    assert cookie_name(other) != COOKIE and TOKEN not in COOKIE
    app_client.cookies.set(cookie_name(other), other)
    assert app_client.get("/evals").status_code == 403
    app_client.cookies.set(COOKIE, TOKEN)
    assert app_client.get("/evals").status_code == 200


def test_the_csrf_token_is_not_the_access_token() -> None:
    assert csrf_token(TOKEN) != TOKEN and TOKEN not in csrf_token(TOKEN)
    assert csrf_token(TOKEN) != csrf_token(TOKEN + "x")


def test_loopback_and_all_interface_hosts() -> None:
    assert allowed_hosts("127.0.0.1", 80) == {"127.0.0.1:80", "localhost:80", "[::1]:80"}
    assert allowed_hosts("192.0.2.7", 80) == {"192.0.2.7:80"}
    assert base_url("0.0.0.0", 8765) == "http://127.0.0.1:8765"
    assert base_url("::1", 8765) == "http://[::1]:8765"


def test_a_busy_port_is_a_usage_error() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        with pytest.raises(UsageError, match="in use"):
            listen("127.0.0.1", taken.getsockname()[1])
        with pytest.raises(UsageError, match="0-65535"):
            listen("127.0.0.1", 70000)
    finally:
        taken.close()


@pytest.fixture
def sidecar_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The console with the SDK's real clients, whose sidecar no longer answers.

    As when daprd dies under a running console: the clients were made while it was up
    (here its health probe, which the SDK awaits on creation, is skipped), and its gRPC port
    now refuses connections (bound and closed again, so nothing listens there).
    """
    monkeypatch.setattr(DaprHealth, "wait_for_sidecar", staticmethod(lambda: None))
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    grpc_port = closed.getsockname()[1]
    closed.close()
    dapr = DaprClient(address=f"127.0.0.1:{grpc_port}")
    workflows = wf.DaprWorkflowClient(host="127.0.0.1", port=str(grpc_port))
    app = create_app(
        ResearchClient.borrowing(workflows, ArtifactStore(dapr)),
        ConsoleConfig(
            token=TOKEN,
            hosts=allowed_hosts("127.0.0.1", 8765),
            scorecard=tmp_path / "scorecard.json",
            baseline=tmp_path / "baseline.json",
        ),
    )
    try:
        yield _signed_in(TestClient(app, base_url=f"http://{HOST}", follow_redirects=False))
    finally:
        workflows.close()
        dapr.close()


@pytest.mark.parametrize("path", ["/runs", "/runs/live", "/runs/r1", "/runs/r1/live", "/schedules"])
def test_a_sidecar_that_does_not_answer_is_a_503_page(sidecar_gone: TestClient, path: str) -> None:
    response = sidecar_gone.get(path)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Error 503</h1>" in response.text
    assert re.search(r"Dapr sidecar", response.text), response.text
    assert "Traceback" not in response.text and TOKEN not in response.text
