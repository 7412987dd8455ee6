"""SafeFetcher: SSRF refusals (also after redirects and DNS rebinding), limits, content
types, robots.txt, politeness and cache revalidation."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import respx

from fte.web import FetchRefused, MemoryPageCache, SafeFetcher, address_refusal
from tests.web.conftest import PUBLIC_IP, LocalServer

ROBOTS_OK = "User-agent: *\nDisallow: /private\n"


class Resolver:
    """Host names to addresses, as a DNS server would answer; records every question."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host in ("127.0.0.1", "::1") or host.replace(".", "").isdigit():
            return [host]
        queue = self.answers.get(host)
        if not queue:
            raise OSError("name not known")
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


def fetcher(client: httpx.Client, resolver: Resolver, **limits: float) -> SafeFetcher:
    return SafeFetcher(client, resolver=resolver, politeness_s=0.0, **limits)  # type: ignore[arg-type]


def public_site(router: respx.MockRouter, robots: str = ROBOTS_OK) -> None:
    router.get(f"http://{PUBLIC_IP}:80/robots.txt").respond(200, text=robots)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("fd00:ec2::254", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.100.100.200", "shared"),
        ("0.0.0.0", "private"),
        ("224.0.0.1", "not a public"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    reason = address_refusal(address)
    assert reason is not None and why in reason
    assert address_refusal(PUBLIC_IP) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/secret",
        "http://localhost:{port}/secret",
        "http://metadata.internal:{port}/latest/meta-data/",
    ],
    ids=["ip", "localhost", "name-to-private"],
)
def test_local_addresses_are_never_contacted(
    client: httpx.Client, local_server: LocalServer, http_mock: respx.MockRouter, url: str
) -> None:
    resolver = Resolver({"localhost": [["127.0.0.1"]], "metadata.internal": [["169.254.169.254"]]})
    with pytest.raises(FetchRefused) as refused:
        fetcher(client, resolver).fetch(url.format(port=local_server.port))
    assert "loopback" in refused.value.reason or "link-local" in refused.value.reason
    assert local_server.paths == []


def test_a_name_with_any_private_address_is_refused(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    resolver = Resolver({"mixed.example": [[PUBLIC_IP, "10.0.0.1"]]})
    with pytest.raises(FetchRefused, match="10.0.0.1 is a private address"):
        fetcher(client, resolver).fetch("http://mixed.example/")


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://example.org/x", "gopher://x/", "http://user:pw@x.org/"]
)
def test_only_plain_http_urls_are_fetched(client: httpx.Client, url: str) -> None:
    with pytest.raises(FetchRefused, match="scheme|credentials"):
        fetcher(client, Resolver({})).fetch(url)


def test_a_redirect_to_a_private_address_is_refused_before_it_is_followed(
    client: httpx.Client, local_server: LocalServer, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)
    http_mock.get(f"http://{PUBLIC_IP}:80/go").respond(
        302, headers={"Location": f"{local_server.url}/secret"}
    )
    resolver = Resolver({"site.example": [[PUBLIC_IP]]})
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1 is a loopback address"):
        fetcher(client, resolver).fetch("http://site.example/go")
    assert local_server.paths == []


def test_a_redirect_through_a_name_that_resolves_privately_is_refused(
    client: httpx.Client, local_server: LocalServer, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)
    http_mock.get(f"http://{PUBLIC_IP}:80/go").respond(
        301, headers={"Location": f"http://internal.example:{local_server.port}/secret"}
    )
    resolver = Resolver({"site.example": [[PUBLIC_IP]], "internal.example": [["127.0.0.1"]]})
    with pytest.raises(FetchRefused, match="internal.example resolves to 127.0.0.1"):
        fetcher(client, resolver).fetch("http://site.example/go")
    assert local_server.paths == []


def test_dns_rebinding_cannot_swap_the_address_after_the_check(
    client: httpx.Client, local_server: LocalServer, http_mock: respx.MockRouter
) -> None:
    """The name answers public first and loopback afterwards: the connection goes to the
    address that was checked, with the name only in the Host header."""
    public_site(http_mock)
    page = http_mock.get(f"http://{PUBLIC_IP}:80/page").respond(
        200, text="Public text.", headers={"Content-Type": "text/plain"}
    )
    resolver = Resolver({"rebind.example": [[PUBLIC_IP], [PUBLIC_IP], ["127.0.0.1"]]})
    fetched = fetcher(client, resolver).fetch("http://rebind.example/page")
    assert fetched.text == "Public text."
    assert page.calls.last.request.headers["Host"] == "rebind.example"
    assert local_server.paths == []


def test_redirect_chains_are_bounded(client: httpx.Client, http_mock: respx.MockRouter) -> None:
    public_site(http_mock)
    http_mock.get(url__regex=rf"http://{PUBLIC_IP}(:80)?/r\d+").mock(
        side_effect=lambda request: httpx.Response(
            302, headers={"Location": f"/r{int(request.url.path[2:]) + 1}"}
        )
    )
    resolver = Resolver({"loop.example": [[PUBLIC_IP]]})
    with pytest.raises(FetchRefused, match="more than 5 redirects"):
        fetcher(client, resolver).fetch("http://loop.example/r0")


def test_a_huge_response_is_refused_without_reading_it_all(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        for _ in range(10_000):
            sent.append(1)
            yield b"x" * 65_536

    http_mock.get(f"http://{PUBLIC_IP}:80/huge").mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/plain"}, content=endless())
    )
    http_mock.get(f"http://{PUBLIC_IP}:80/declared").respond(
        200, headers={"Content-Type": "text/plain", "Content-Length": str(10**9)}
    )
    resolver = Resolver({"big.example": [[PUBLIC_IP]]})
    fetch = fetcher(client, resolver, max_bytes=1_000_000)
    with pytest.raises(FetchRefused, match="larger than 1,000,000 bytes"):
        fetch.fetch("http://big.example/huge")
    assert len(sent) < 20  # stopped soon after the limit, not after 655 MB
    with pytest.raises(FetchRefused, match="larger than"):
        fetch.fetch("http://big.example/declared")


def test_a_slow_response_is_cut_at_the_deadline(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)

    def trickle() -> Iterator[bytes]:
        for _ in range(100):
            time.sleep(0.05)
            yield b"."

    http_mock.get(f"http://{PUBLIC_IP}:80/slow").mock(
        return_value=httpx.Response(200, headers={"Content-Type": "text/plain"}, content=trickle())
    )
    resolver = Resolver({"slow.example": [[PUBLIC_IP]]})
    started = time.monotonic()
    with pytest.raises(FetchRefused, match="no complete response within 0.5 s"):
        fetcher(client, resolver, deadline_s=0.5).fetch("http://slow.example/slow")
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    "content_type", ["application/pdf", "image/png", "application/octet-stream", ""]
)
def test_content_outside_the_allowlist_is_refused(
    client: httpx.Client, http_mock: respx.MockRouter, content_type: str
) -> None:
    public_site(http_mock)
    http_mock.get(f"http://{PUBLIC_IP}:80/file").respond(
        200, content=b"\x00\x01binary", headers={"Content-Type": content_type}
    )
    resolver = Resolver({"files.example": [[PUBLIC_IP]]})
    with pytest.raises(FetchRefused, match="content type"):
        fetcher(client, resolver).fetch("http://files.example/file")


def test_robots_txt_is_honoured(client: httpx.Client, http_mock: respx.MockRouter) -> None:
    public_site(http_mock)
    allowed = http_mock.get(f"http://{PUBLIC_IP}:80/public").respond(
        200, text="<p>ok</p>", headers={"Content-Type": "text/html"}
    )
    private = http_mock.get(f"http://{PUBLIC_IP}:80/private/page").respond(200, text="no")
    resolver = Resolver({"robots.example": [[PUBLIC_IP]]})
    fetch = fetcher(client, resolver)
    with pytest.raises(FetchRefused, match="disallowed by the site's robots.txt"):
        fetch.fetch("http://robots.example/private/page")
    assert fetch.fetch("http://robots.example/public").text == "<p>ok</p>"
    assert not private.called and allowed.call_count == 1


@pytest.mark.parametrize(("status", "allowed"), [(404, True), (503, False)])
def test_missing_robots_allows_and_failing_robots_refuses(
    client: httpx.Client, http_mock: respx.MockRouter, status: int, allowed: bool
) -> None:
    http_mock.get(f"http://{PUBLIC_IP}:80/robots.txt").respond(status)
    page = http_mock.get(f"http://{PUBLIC_IP}:80/page").respond(
        200, text="text", headers={"Content-Type": "text/plain"}
    )
    resolver = Resolver({"r.example": [[PUBLIC_IP]]})
    if allowed:
        assert fetcher(client, resolver).fetch("http://r.example/page").text == "text"
    else:
        with pytest.raises(FetchRefused, match="robots.txt answered HTTP 503"):
            fetcher(client, resolver).fetch("http://r.example/page")
        assert not page.called


def test_requests_to_one_host_are_spaced_by_the_politeness_interval(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock, robots="User-agent: *\nCrawl-delay: 3\n")
    http_mock.get(url__regex=rf"http://{PUBLIC_IP}(:80)?/p\d").respond(
        200, text="t", headers={"Content-Type": "text/plain"}
    )
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    fetch = SafeFetcher(
        client,
        resolver=Resolver({"polite.example": [[PUBLIC_IP]]}),
        politeness_s=1.0,
        clock=lambda: now[0],
        sleep=sleep,
    )
    fetch.fetch("http://polite.example/p1")
    fetch.fetch("http://polite.example/p2")
    # robots.txt at once; then the site's Crawl-delay (longer than ours) before each page.
    assert sleeps == [3.0, 3.0]


def test_a_cached_page_is_revalidated_and_reused_when_unchanged(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)
    answers = iter(
        [
            httpx.Response(
                200,
                text="Version one.",
                headers={"Content-Type": "text/plain", "ETag": '"v1"', "Last-Modified": "x"},
            ),
            httpx.Response(304),
        ]
    )
    route = http_mock.get(f"http://{PUBLIC_IP}:80/doc").mock(side_effect=lambda _: next(answers))
    cache = MemoryPageCache()
    resolver = Resolver({"cache.example": [[PUBLIC_IP]]})
    first = SafeFetcher(client, resolver=resolver, cache=cache, politeness_s=0.0).fetch(
        "http://cache.example/doc"
    )
    # Within the freshness window the cached page is used without a request at all.
    fresh = SafeFetcher(client, resolver=resolver, cache=cache, politeness_s=0.0)
    assert fresh.fetch("http://cache.example/doc") == first and route.call_count == 1
    cache.put("http://cache.example/doc", replace(first, retrieved_at="2026-01-02T03:04:05+00:00"))
    again = SafeFetcher(
        client, resolver=resolver, cache=cache, politeness_s=0.0, fresh_for_s=0.0
    ).fetch("http://cache.example/doc")
    assert (again.text, again.etag, again.url) == ("Version one.", '"v1"', first.url)
    assert route.calls.last.request.headers["If-None-Match"] == '"v1"'
    assert route.calls.last.request.headers["If-Modified-Since"] == "x"
    # The site confirmed the copy just now: that is when it was retrieved, and the cache
    # keeps the new time (so the page is fresh again).
    assert again.retrieved_at >= first.retrieved_at > "2026-01-02T03:04:05+00:00"
    assert cache.get("http://cache.example/doc") == again


def test_without_a_crawl_delay_requests_are_spaced_by_our_interval(
    client: httpx.Client, http_mock: respx.MockRouter
) -> None:
    public_site(http_mock)
    http_mock.get(url__regex=rf"http://{PUBLIC_IP}(:80)?/p\d").respond(
        200, text="t", headers={"Content-Type": "text/plain"}
    )
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    fetch = SafeFetcher(
        client,
        resolver=Resolver({"quick.example": [[PUBLIC_IP]]}),
        politeness_s=1.0,
        clock=lambda: now[0],
        sleep=sleep,
    )
    fetch.fetch("http://quick.example/p1")
    now[0] += 0.25  # some work between the two pages
    fetch.fetch("http://quick.example/p2")
    assert sleeps == [1.0, 0.75]
