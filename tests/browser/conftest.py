"""Fixtures for browser tests: the console on a real stack and worker, driven by Chromium.

See `tests/support/console.py` for what runs; each module gets its own stack.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.support.console import CHROMIUM, Console, launch_chromium, serve_console

CORPUS = {
    "timers.md": "# Durable timers\n\nDurable timers are stored by the scheduler and fire "
    "after a restart because their due time is persisted.\n\nA timer that was due while the "
    "process was down fires as soon as the worker reconnects.\n",
    "retries.md": "# Retry policies\n\nRetry policies space out attempts with an exponential "
    "backoff coefficient.\n\nEach attempt of an activity is recorded in the workflow history.\n",
    "compensation.md": "# Compensation\n\nCompensation undoes partial work by running the "
    "inverse of each completed step in reverse order.\n",
    "approvals.md": "# Approval gates\n\nApproval gates wait for people by pausing the workflow "
    "on an external event.\n\nA reminder timer nudges the approver while the gate waits.\n",
}
# Pages follow the engine by polling; on a loaded machine an activity (a notice, a stage)
# can take longer than Playwright's default 5 s to show, so expectations wait longer.
expect.set_options(timeout=30_000)

# A source whose text is markup: the console must show it as text and run none of it.
HOSTILE = (
    "# Durable timer scripts <script>window.__pwned = 1</script>\n\n"
    "Durable timers fire after a restart <script>window.__pwned = 1</script> and "
    '<img src="x" onerror="window.__pwned = 2"> keep their due time in the scheduler.\n'
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text)
    (corpus / "hostile.md").write_text(HOSTILE)
    with serve_console(root / "data", corpus, root / "no-scorecard.json") as served:
        yield served


# Module scope: Chromium and its driver are gone once the browser tests are done, instead of
# holding memory through the rest of the test session.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: make test installs it (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = launch_chromium(playwright)
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext, console: Console) -> Page:
    """A page that has opened the console's token URL once (so it holds the cookie)."""
    page = context.new_page()
    response = page.goto(f"{console.url}/runs?token={console.token}")
    assert response is not None and response.ok
    assert page.url == f"{console.url}/runs", "the token is traded for a cookie and dropped"
    return page
