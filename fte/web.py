"""Web research: search APIs (Tavily, Brave, SearXNG), a safe page fetcher, and `WebSource`.

`WebSource` is a `SourceProvider` like the local corpus: it asks a search API for result
URLs, fetches each page through `SafeFetcher`, cuts it into passages exactly as a local
document is cut (`fte.sources`), and ranks them with the same index code in memory.

What a fetched page may not do (`SafeFetcher`):

- use any scheme but http/https, or reach a host whose address is loopback, private,
  link-local (cloud metadata: 169.254.169.254), shared (100.64/10), multicast, reserved
  or unspecified. Every address a name resolves to is checked, for the first request and
  for every redirect, and the connection goes to the checked address (the host name is
  kept for the Host header and TLS), so a second DNS answer cannot swap in another
  (DNS rebinding);
- take longer than its deadline or send more than its size limit (`fte.http_limits`),
  or be of a content type outside the allowlist;
- be fetched when the site's robots.txt disallows it, or sooner after the previous request
  to the same host than the politeness interval (or the site's Crawl-delay).

Each refused URL is logged with its reason and kept in `WebSource.refusals`, for the
report's appendix. A page's text is data: no link in it is ever followed, and passages
carry only the URL they were fetched from.

API keys come from the environment only (`TAVILY_API_KEY`, `BRAVE_API_KEY`); they are
sent in headers, never put into a URL, a log line or an error message.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
import structlog
from protego import Protego

from fte import http_limits
from fte.contracts import Passage
from fte.errors import UsageError

log = structlog.get_logger(__name__)

USER_AGENT = "fte-research/0.1 (+https://example.invalid/fte-research)"
ROBOTS_AGENT = "fte-research"
ALLOWED_CONTENT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown")
MAX_REDIRECTS = 5
# A page larger than this is refused: research needs articles, not data dumps.
MAX_PAGE_BYTES = 2 * 1024 * 1024
PAGE_DEADLINE_S = 15.0
POLITENESS_INTERVAL_S = 1.0
# A cached page younger than this is used without asking the site again: the queries of
# one source finder, and a retried or replayed activity, see the same page at no cost.
FRESH_FOR_S = 600.0
# What keeps the page cache from growing without end: the state store drops a page a week
# after it was fetched (each page is at most MAX_PAGE_BYTES).
CACHE_TTL_S = 7 * 24 * 3600
# 100.64.0.0/10 (carrier-grade NAT) is where some clouds put their metadata service.
_SHARED = ipaddress.ip_network("100.64.0.0/10")

Resolver = Callable[[str, int], list[str]]


class FetchRefused(Exception):
    """A URL the fetcher would not fetch (or could not), with the reason a person can act on."""

    def __init__(self, url: str, reason: str, *, about_host: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.about_host = about_host
        """The URL's scheme, host or address is refused, whatever its path."""


@dataclass(frozen=True)
class Refusal:
    url: str
    reason: str


@dataclass(frozen=True)
class FetchedPage:
    url: str
    """The URL the content came from (after redirects)."""
    content_type: str
    text: str
    retrieved_at: str
    etag: str = ""
    last_modified: str = ""


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: str) -> str | None:
    """Why a connection to `address` is refused (None if it is a public address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address (cloud metadata lives there)"
    if ip.is_private:
        return f"{ip} is a private address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED:
        return f"{ip} is a shared (carrier-grade NAT) address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return f"{ip} is not a public address"
    return None


class PageCache(Protocol):
    """Fetched pages by URL, for revalidation with ETag / Last-Modified."""

    def get(self, url: str) -> FetchedPage | None: ...

    def put(self, url: str, page: FetchedPage) -> None: ...


class DocumentStore(Protocol):
    def get_document(self, key: str) -> Any | None: ...

    def put_document(self, key: str, document: Any, *, ttl_s: int | None = None) -> None: ...


class StatePageCache:
    """Fetched pages in the Dapr state store (`webpage:<sha256 of the URL>`), shared by every
    worker, so a retried or replayed activity revalidates instead of refetching."""

    def __init__(self, store: DocumentStore) -> None:
        self._store = store

    @staticmethod
    def key(url: str) -> str:
        return "webpage:" + hashlib.sha256(url.encode()).hexdigest()

    def get(self, url: str) -> FetchedPage | None:
        document = self._store.get_document(self.key(url))
        if not isinstance(document, dict) or document.get("request_url") != url:
            return None
        fields = {name: document.get(name) for name in FetchedPage.__dataclass_fields__}
        if not all(isinstance(value, str) for value in fields.values()):
            return None
        return FetchedPage(**fields)  # type: ignore[arg-type]

    def put(self, url: str, page: FetchedPage) -> None:
        self._store.put_document(
            self.key(url), {"request_url": url, **asdict(page)}, ttl_s=CACHE_TTL_S
        )


class MemoryPageCache:
    def __init__(self) -> None:
        self._pages: dict[str, FetchedPage] = {}
        self._lock = threading.Lock()

    def get(self, url: str) -> FetchedPage | None:
        with self._lock:
            return self._pages.get(url)

    def put(self, url: str, page: FetchedPage) -> None:
        with self._lock:
            self._pages[url] = page


@dataclass
class _Host:
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_request: float = float("-inf")
    robots: Protego | None = None


class SafeFetcher:
    """Fetches one public web page at a time under the rules in the module docstring."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        resolver: Resolver | None = None,
        cache: PageCache | None = None,
        max_bytes: int = MAX_PAGE_BYTES,
        deadline_s: float = PAGE_DEADLINE_S,
        politeness_s: float = POLITENESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        fresh_for_s: float = FRESH_FOR_S,
    ) -> None:
        http_limits.install(client)
        self._client = client
        # Looked up at call time, so tests can put a fake resolver under the CLI.
        self._resolve = resolver or (lambda host, port: system_resolver(host, port))
        self._cache = cache
        self._max_bytes = max_bytes
        self._deadline_s = deadline_s
        self._politeness_s = politeness_s
        self._clock = clock
        self._sleep = sleep
        self._fresh_for_s = fresh_for_s
        self._hosts: dict[str, _Host] = {}
        self._hosts_lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}

    def fetch(self, url: str) -> FetchedPage:
        """The page at `url`; raises `FetchRefused` with the reason otherwise."""
        # Source finders run in parallel and find the same pages: one fetch per URL at a
        # time, so the others find it in the cache.
        with self._hosts_lock:
            url_lock = self._url_locks.setdefault(url, threading.Lock())
        with url_lock:
            return self._fetch(url)

    def _fetch(self, url: str) -> FetchedPage:
        cached = self._cache.get(url) if self._cache is not None else None
        if cached is not None and _age_s(cached) < self._fresh_for_s:
            return cached
        current = url
        for _ in range(MAX_REDIRECTS + 1):
            self._check_robots(current)
            conditional: dict[str, str] = {}
            if cached is not None and current == url:
                if cached.etag:
                    conditional["If-None-Match"] = cached.etag
                if cached.last_modified:
                    conditional["If-Modified-Since"] = cached.last_modified
            response_status, headers, body = self._get(current, conditional)
            if response_status in (301, 302, 303, 307, 308):
                location = headers.get("location")
                if not location:
                    raise FetchRefused(url, f"redirect {response_status} without a Location")
                current = urljoin(current, location)
                continue
            if response_status == 304 and cached is not None:
                # The site confirmed the cached copy is what it serves now: it counts as
                # retrieved now, and is fresh again.
                confirmed = replace(cached, retrieved_at=_now_iso())
                if self._cache is not None:
                    self._cache.put(url, confirmed)
                return confirmed
            if response_status != 200:
                raise FetchRefused(url, f"HTTP {response_status}")
            content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if content_type not in ALLOWED_CONTENT_TYPES:
                allowed = ", ".join(ALLOWED_CONTENT_TYPES)
                shown = content_type or "unknown"
                raise FetchRefused(url, f"content type {shown!r} is not one of {allowed}")
            page = FetchedPage(
                url=current,
                content_type=content_type,
                text=_decode(body, headers.get("content-type", "")),
                retrieved_at=_now_iso(),
                etag=headers.get("etag", ""),
                last_modified=headers.get("last-modified", ""),
            )
            if self._cache is not None:
                self._cache.put(url, page)
            return page
        raise FetchRefused(url, f"more than {MAX_REDIRECTS} redirects")

    def _get(self, url: str, extra: Mapping[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """One GET to the checked address of `url`'s host, politely spaced, within limits."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchRefused(
                url, f"scheme {parts.scheme!r} is not http or https", about_host=True
            )
        host = parts.hostname
        if not host:
            raise FetchRefused(url, "no host in the URL", about_host=True)
        if parts.username or parts.password:
            raise FetchRefused(url, "credentials in the URL", about_host=True)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = self._checked_address(url, host, port)
        netloc = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{netloc}:{port}", parts.path or "/", parts.query, ""))
        headers = {"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": USER_AGENT, **extra}
        # TLS is still checked against the host's name, not the address connected to.
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        self._wait_turn(host)
        try:
            with http_limits.exchange(self._deadline_s, self._max_bytes):
                request = self._client.build_request(
                    "GET", target, headers=headers, extensions=extensions
                )
                response = self._client.send(request, stream=True, follow_redirects=False)
                try:
                    body = response.read()
                finally:
                    response.close()
        except http_limits.ResponseTooLarge:
            raise FetchRefused(url, f"larger than {self._max_bytes:,} bytes") from None
        except http_limits.DeadlineExceeded:
            raise FetchRefused(url, f"no complete response within {self._deadline_s:g} s") from None
        except httpx.HTTPError as error:
            raise FetchRefused(url, f"request failed ({type(error).__name__})") from None
        return response.status_code, response.headers, body

    def _checked_address(self, url: str, host: str, port: int) -> str:
        try:
            # An address written in the URL is checked as it is, never looked up.
            addresses = (
                [str(ipaddress.ip_address(host))] if _is_ip(host) else self._resolve(host, port)
            )
        except OSError as error:
            raise FetchRefused(url, f"cannot resolve {host} ({error})", about_host=True) from None
        if not addresses:
            raise FetchRefused(url, f"{host} resolves to no address", about_host=True)
        for address in addresses:
            if (reason := address_refusal(address)) is not None:
                said = reason if _is_ip(host) else f"{host} resolves to {reason}"
                raise FetchRefused(url, said, about_host=True)
        return addresses[0]

    def _host(self, host: str) -> _Host:
        with self._hosts_lock:
            return self._hosts.setdefault(host, _Host())

    def _wait_turn(self, host: str) -> None:
        state = self._host(host)
        with state.lock:
            delay = self._politeness_s
            if state.robots is not None:
                delay = max(delay, float(state.robots.crawl_delay(ROBOTS_AGENT) or 0.0))
            wait = state.last_request + delay - self._clock()
            if wait > 0:
                self._sleep(wait)
            state.last_request = self._clock()

    def _check_robots(self, url: str) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        state = self._host(host)
        if state.robots is None:
            robots_url = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
            try:
                status, _, body = self._get(robots_url, {})
            except FetchRefused as refused:
                if refused.about_host:
                    raise FetchRefused(url, refused.reason, about_host=True) from None
                raise FetchRefused(url, f"robots.txt unavailable: {refused.reason}") from None
            if 500 <= status:
                # RFC 9309: a server error on robots.txt means "assume everything disallowed".
                raise FetchRefused(url, f"robots.txt answered HTTP {status}")
            text = body.decode("utf-8", "replace") if status == 200 else ""
            state.robots = Protego.parse(text)
        if not state.robots.can_fetch(url, ROBOTS_AGENT):
            raise FetchRefused(url, "disallowed by the site's robots.txt")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _age_s(page: FetchedPage) -> float:
    try:
        retrieved = datetime.fromisoformat(page.retrieved_at)
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - retrieved).total_seconds()


def _decode(body: bytes, content_type: str) -> str:
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip("\"'")
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


# --- Search APIs -------------------------------------------------------------------


@dataclass(frozen=True)
class SearchHit:
    url: str
    title: str


class SearchApi(Protocol):
    name: str

    def search(self, query: str, *, limit: int) -> list[SearchHit]: ...


class SearchApiError(UsageError):
    """A search API refused or failed; says which and what to check, never the key."""


def _hits(items: Iterable[object], url_key: str = "url") -> list[SearchHit]:
    hits: list[SearchHit] = []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get(url_key), str):
            hits.append(SearchHit(url=item[url_key], title=str(item.get("title") or "")))
    return hits


def _answer(name: str, response: httpx.Response) -> dict[str, object]:
    if response.status_code in (401, 403):
        raise SearchApiError(f"{name} refused the API key (HTTP {response.status_code}); check it")
    if response.status_code != 200:
        raise SearchApiError(f"{name} search failed with HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise SearchApiError(f"{name} answered with something that is not JSON") from None
    if not isinstance(data, dict):
        raise SearchApiError(f"{name} answered with unexpected JSON")
    return data


class TavilySearch:
    name = "tavily"
    URL = "https://api.tavily.com/search"

    def __init__(self, client: httpx.Client, api_key: str) -> None:
        self._client = client
        self._key = api_key

    def search(self, query: str, *, limit: int) -> list[SearchHit]:
        response = self._client.post(
            self.URL,
            json={"query": query, "max_results": limit},
            headers={"Authorization": f"Bearer {self._key}"},
        )
        results = _answer(self.name, response).get("results", [])
        return _hits(results if isinstance(results, list) else [])[:limit]


class BraveSearch:
    name = "brave"
    URL = "https://api.search.brave.com/res/v1/web/search"

    def __init__(self, client: httpx.Client, api_key: str) -> None:
        self._client = client
        self._key = api_key

    def search(self, query: str, *, limit: int) -> list[SearchHit]:
        response = self._client.get(
            self.URL,
            params={"q": query, "count": limit},
            headers={"X-Subscription-Token": self._key, "Accept": "application/json"},
        )
        web = _answer(self.name, response).get("web", {})
        results = web.get("results", []) if isinstance(web, dict) else []
        return _hits(results if isinstance(results, list) else [])[:limit]


class SearxngSearch:
    """A self-hosted SearXNG instance (its JSON format must be enabled in its settings)."""

    name = "searxng"

    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/search"

    def search(self, query: str, *, limit: int) -> list[SearchHit]:
        response = self._client.get(self._url, params={"q": query, "format": "json"})
        results = _answer(self.name, response).get("results", [])
        return _hits(results if isinstance(results, list) else [])[:limit]


WEB_SEARCH_ENV = "FTE_WEB_SEARCH"
SEARXNG_URL_ENV = "FTE_SEARXNG_URL"


def search_api_from_env(client: httpx.Client, env: Mapping[str, str] = os.environ) -> SearchApi:
    """The search API the environment configures: `FTE_WEB_SEARCH` names one, or the only
    one whose key (`TAVILY_API_KEY`, `BRAVE_API_KEY`) or URL (`FTE_SEARXNG_URL`) is set."""
    configured = {
        "tavily": env.get("TAVILY_API_KEY", "").strip(),
        "brave": env.get("BRAVE_API_KEY", "").strip(),
        "searxng": env.get(SEARXNG_URL_ENV, "").strip(),
    }
    chosen = env.get(WEB_SEARCH_ENV, "").strip().lower()
    if not chosen:
        available = [name for name, value in configured.items() if value]
        if len(available) != 1:
            raise UsageError(
                "web search needs one search API: set TAVILY_API_KEY, BRAVE_API_KEY or "
                f"{SEARXNG_URL_ENV}" + (f", or {WEB_SEARCH_ENV} to pick one" if available else "")
            )
        chosen = available[0]
    if chosen not in configured:
        raise UsageError(f"{WEB_SEARCH_ENV}={chosen!r}: use tavily, brave or searxng")
    if not configured[chosen]:
        needs = {"tavily": "TAVILY_API_KEY", "brave": "BRAVE_API_KEY", "searxng": SEARXNG_URL_ENV}
        raise UsageError(f"{WEB_SEARCH_ENV}={chosen} needs {needs[chosen]} to be set")
    if chosen == "tavily":
        return TavilySearch(client, configured["tavily"])
    if chosen == "brave":
        return BraveSearch(client, configured["brave"])
    return SearxngSearch(client, configured["searxng"])


# --- Pages as passages -------------------------------------------------------------


def page_passages(page: FetchedPage, fallback_title: str) -> list[Passage]:
    """A fetched page cut into passages the way a local document of its type is."""
    from fte.sources import chunk_text, page_sections

    title, sections = page_sections(page.text, page.content_type)
    passages: list[Passage] = []
    for section in sections:
        for chunk in chunk_text(section.text, chunk_chars=1200, overlap_chars=200):
            digest = hashlib.sha1(f"{page.url}\0{len(passages)}".encode(), usedforsecurity=False)
            passages.append(
                Passage(
                    passage_id="w" + digest.hexdigest()[:11],
                    title=title or fallback_title or page.url,
                    location=page.url,
                    section=section.heading,
                    text=chunk,
                    retrieved_at=page.retrieved_at,
                )
            )
    return passages


class WebSource:
    """Search the web, fetch the result pages safely, rank their passages for the query."""

    name = "web"

    def __init__(self, api: SearchApi, fetcher: SafeFetcher, *, pages: int = 5) -> None:
        self._api = api
        self._fetcher = fetcher
        self._pages = pages
        self.refusals: list[Refusal] = []

    def search(self, query: str, *, limit: int) -> list[Passage]:
        from fte.corpus_index import rank_in_memory

        passages: list[Passage] = []
        for hit in self._api.search(query, limit=self._pages):
            try:
                page = self._fetcher.fetch(hit.url)
            except FetchRefused as refused:
                self.refusals.append(Refusal(refused.url, refused.reason))
                log.warning("web page refused", url=refused.url, reason=refused.reason)
                continue
            passages += page_passages(page, hit.title)
        return rank_in_memory(passages, query, limit=limit)


def web_source_from_env(client: httpx.Client, *, cache: PageCache | None = None) -> WebSource:
    return WebSource(search_api_from_env(client), SafeFetcher(client, cache=cache))


_activity_client: httpx.Client | None = None
_activity_lock = threading.Lock()


def activity_web_source(store: DocumentStore) -> WebSource:
    """The web source of a worker's search activity: one HTTP client and one fetcher per
    process and state store (so per-host politeness spans activities), pages cached there."""
    global _activity_client
    with _activity_lock:
        if _activity_client is None:
            _activity_client = httpx.Client(timeout=httpx.Timeout(10.0))
        client = _activity_client
        fetcher = _fetchers.get(id(store))
        if fetcher is None:
            fetcher = _fetchers[id(store)] = SafeFetcher(client, cache=StatePageCache(store))
    return WebSource(search_api_from_env(client), fetcher)


# By the id of the worker's store: a process that serves two stacks (tests) keeps them apart.
_fetchers: dict[int, SafeFetcher] = {}


def fuse(rankings: Sequence[Sequence[Passage]], *, limit: int, k: int = 60) -> list[Passage]:
    """Reciprocal rank fusion: scores of different rankers are not comparable, ranks are."""
    scores: dict[str, float] = {}
    first: dict[str, Passage] = {}
    for ranking in rankings:
        for rank, passage in enumerate(ranking, 1):
            scores[passage.passage_id] = scores.get(passage.passage_id, 0.0) + 1.0 / (k + rank)
            first.setdefault(passage.passage_id, passage)
    ordered = sorted(scores, key=lambda pid: (-scores[pid], pid))[:limit]
    return [first[pid].model_copy(update={"score": scores[pid]}) for pid in ordered]
