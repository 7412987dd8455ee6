"""A research run with web sources on the real engine: the search API and the pages are
mocked over HTTP; fetched pages land in the real state store and are reused from there."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
import respx

from fte import web
from fte.client import ResearchClient
from fte.contracts import RunConfig
from fte.dapr_stack import EmbeddedStack
from fte.web import TavilySearch
from tests.pipeline.conftest import SUB_QUESTIONS, install
from tests.support.scripted_llm import ANALYST, ScriptedLLM

pytestmark = pytest.mark.engine

PUBLIC_IP = "93.184.216.34"
PAGES = {
    "timers": "<title>Durable timers</title><p>Durable timers are stored by the scheduler and "
    "fire after a restart because their due time is persisted.</p>",
    "retries": "<title>Retry policies</title><p>Retry policies space out attempts with an "
    "exponential backoff coefficient.</p>",
    "compensation": "<title>Compensation</title><p>Compensation undoes partial work by running "
    "the inverse of each completed step in reverse order.</p>",
    "approvals": "<title>Approval gates</title><p>Approval gates wait for people by pausing the "
    "workflow on an external event.</p>",
}


def _the_web(
    mock_llm: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, str], dict[str, respx.Route]]:
    """Tavily answering every search with the pages (on one public address) and the cloud
    metadata address; returns each page's host and route."""
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-test-key-0123456789")
    for name in ("BRAVE_API_KEY", "FTE_SEARXNG_URL", "FTE_WEB_SEARCH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(web, "system_resolver", lambda host, port: [PUBLIC_IP])
    hosts = {name: f"{name}-{uuid.uuid4().hex[:6]}.example" for name in PAGES}
    mock_llm.post(TavilySearch.URL).respond(
        200,
        json={
            "results": [
                {"url": f"https://{host}/{name}", "title": name} for name, host in hosts.items()
            ]
            + [{"url": "http://169.254.169.254/latest/meta-data/", "title": "metadata"}]
        },
    )
    mock_llm.get(f"https://{PUBLIC_IP}:443/robots.txt").respond(404)
    pages = {
        name: mock_llm.get(f"https://{PUBLIC_IP}:443/{name}").respond(
            200, text=text, headers={"Content-Type": "text/html", "ETag": f'"{name}"'}
        )
        for name, text in PAGES.items()
    }
    return hosts, pages


def _config(corpus: Path) -> RunConfig:
    return RunConfig(
        query="How do durable workflows stay reliable?",
        corpus_dir=str(corpus),
        sources=["web"],
        depth=0,
    )


def test_a_run_with_web_sources_cites_fetched_pages_and_caches_them(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    embedded_stack: EmbeddedStack,
    monkeypatch: pytest.MonkeyPatch,
    corpus: Path,
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    hosts, pages = _the_web(mock_llm, monkeypatch)
    config = _config(corpus)
    task_id = f"t-{uuid.uuid4().hex[:10]}"
    research.start(config, task_id)
    snap = research.wait(task_id, timeout_s=120)
    assert snap.end_state == "completed", (snap.failure, snap.progress)

    report = research.report(task_id)
    locations = {s["location"] for s in report["sources"]}
    assert locations and locations <= {f"https://{h}/{n}" for n, h in hosts.items()}
    assert all("169.254" not in location for location in locations)
    # Every page was fetched once, though every sub-question's queries found it: the
    # others were served from the state store's cache.
    assert all(route.call_count == 1 for route in pages.values())
    with sqlite3.connect(embedded_stack.data_dir / "state.db") as db:
        cached = db.execute(
            "SELECT count(*), min(julianday(expiration_time) - julianday(update_time)) "
            "FROM state WHERE key LIKE '%webpage:%'"
        ).fetchone()
    assert cached[0] >= len(PAGES)
    # Cached pages expire a week after they were fetched, so the cache cannot grow forever.
    assert cached[1] == pytest.approx(7, abs=0.01)
    # The refused address is named, with its reason, in the report's appendix.
    assert report["refused_pages"] == [
        {
            "url": "http://169.254.169.254/latest/meta-data/",
            "reason": "169.254.169.254 is a link-local address (cloud metadata lives there)",
        }
    ]
    assert "Web pages not fetched:" in report["markdown"]
    assert (
        "`http://169.254.169.254/latest/meta-data/` — 169.254.169.254 is a link-local"
        in (report["markdown"])
    )


def test_a_cancelled_web_run_leaves_no_list_of_refused_pages(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    monkeypatch: pytest.MonkeyPatch,
    corpus: Path,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    release = llm.hold(ANALYST)
    _the_web(mock_llm, monkeypatch)
    task_id = research.start(_config(corpus), f"t-{uuid.uuid4().hex[:10]}")
    try:
        assert llm.arrived[ANALYST].wait(timeout=120)
        # The searches refused the metadata address, and said so for the report.
        assert research.store.web_refusals(task_id)
        research.cancel(task_id, reason="enough")
        assert research.wait(task_id, timeout_s=120).end_state == "cancelled"
    finally:
        release.set()
    # Compensation deletes the list with the artifacts: there will be no report for it.
    assert research.store.web_refusals(task_id) == {}
