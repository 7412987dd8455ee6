"""Screenshots of the console's main pages for the README, taken with the browser tests' setup.

    .venv/bin/python -m tests.browser.screenshots [OUT_DIR]    # default docs/screenshots

A private stack and offline worker run a few research runs on the sample corpus (one with a
gap-filling round and a token budget, one left waiting at the approval gate, one rejected)
and a schedule, then Debian's Chromium opens
each page through the token URL, as a person would.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from fte import package_path
from fte.client import ResearchClient
from fte.contracts import ApprovalDecision, ModelEndpoint, RunConfig
from fte.schedule.client import ScheduleClient, make_spec
from tests.support.console import OFFLINE_MODELS, Console, launch_chromium, serve_console

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "examples" / "corpus"
WIDTH = 1280


def _runs(console: Console) -> tuple[str, str]:
    client: ResearchClient = console.client
    done = console.start(
        "durable-recovery",
        "How do durable workflows recover from crashes?",
        depth=1,
        max_tokens=200_000,
        budget_usd=0.5,
    )
    client.wait(done, timeout_s=180)
    saga = console.start("saga-compensation", "What does a saga's compensation undo?")
    client.wait(saga, timeout_s=180)
    rejected = console.start("retry-backoff", "How should retries back off?", approve=True)
    console.wait_stage(rejected, "awaiting_approval")
    client.approve(rejected, ApprovalDecision(approved=False, comment="too narrow for now"))
    client.wait(rejected, timeout_s=60)
    gated = console.start(
        "timers-approval", "How do durable timers survive a restart?", approve=True
    )
    console.wait_stage(gated, "awaiting_approval")
    schedules = ScheduleClient(client)
    spec = make_spec(
        name="durable-weekly",
        run=RunConfig(
            query="What is new on durable execution?",
            corpus_dir=str(CORPUS),
            endpoint=ModelEndpoint(offline=True),
            models=OFFLINE_MODELS,
        ),
        every=None,
        cron="0 7 * * MON",
        tz="Europe/Berlin",
        start_at=None,
        end_at=None,
        overlap="skip",
        catchup_window="1h",
        jitter="",
        min_interval_s=60,
    )
    schedules.add(spec)
    schedules.wait_started(spec.name)
    return done, gated


def _shot(page: Page, path: Path, *, full: bool = True, height: int | None = None) -> None:
    if height is not None:
        page.set_viewport_size({"width": WIDTH, "height": height})
        page.wait_for_timeout(500)  # let a resized page (and its framed report) repaint
    page.screenshot(path=str(path), full_page=full)
    print(path)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    # The committed baseline stands in for the latest scorecard, so the picture does not
    # depend on whatever `fte eval` last wrote in this checkout.
    scorecard = package_path("evals", "data") / "baseline.json"
    with (
        tempfile.TemporaryDirectory() as tmp,
        serve_console(Path(tmp) / "data", CORPUS, scorecard) as console,
        sync_playwright() as playwright,
    ):
        done, gated = _runs(console)
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": WIDTH, "height": 720})
        page.goto(f"{console.url}/runs?token={console.token}")
        _shot(page, out / "runs.png")
        page.goto(f"{console.url}/runs/{gated}")
        _shot(page, out / "approval.png", full=False, height=1000)
        page.goto(f"{console.url}/runs/{done}")
        page.frame_locator("iframe.report").locator("h1").wait_for()
        _shot(page, out / "run.png", full=False, height=1500)
        for name in ("rounds", "timeline"):
            shot = out / f"{name}.png"
            page.locator(f"#run-{name}").screenshot(path=str(shot))
            print(shot)
        page.goto(f"{console.url}/schedules")
        _shot(page, out / "schedules.png", height=500)
        page.goto(f"{console.url}/evals")
        _shot(page, out / "evals.png", full=False, height=1100)
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots")
