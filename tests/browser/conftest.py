"""Fixtures for browser tests: the console on a real stack and worker, driven by Chromium.

The stack is the real embedded Dapr runtime (its own, so no other test's worker takes its
work), the worker runs the pipeline with the built-in offline model (no HTTP to any model
server at all), and the console is the real app served by uvicorn on a loopback port.
Chromium is Debian's package (`.ci/run` installs it), driven through Playwright's Python API;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from fte import package_path
from fte.client import ResearchClient
from fte.contracts import ModelEndpoint, RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from fte.llm import LLMConfig
from fte.ui.app import ConsoleConfig, create_app
from fte.ui.security import allowed_hosts, new_token
from fte.ui.server import base_url, listen
from fte.wiring import research_worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

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
# A source whose text is markup: the console must show it as text and run none of it.
HOSTILE = (
    "# Durable timer scripts <script>window.__pwned = 1</script>\n\n"
    "Durable timers fire after a restart <script>window.__pwned = 1</script> and "
    '<img src="x" onerror="window.__pwned = 2"> keep their due time in the scheduler.\n'
)


@dataclass
class Console:
    url: str
    token: str
    client: ResearchClient
    corpus: Path

    def start(self, task_id: str, query: str, *, approve: bool = False) -> str:
        config = RunConfig(
            query=query,
            corpus_dir=str(self.corpus),
            endpoint=ModelEndpoint(offline=True),
            require_approval=approve,
        )
        return self.client.start(config, task_id)

    def wait_stage(self, task_id: str, stage: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            snap = self.client.snapshot(task_id)
            if snap.progress is not None and snap.progress.stage == stage:
                return
            assert not snap.finished, f"{task_id} ended ({snap.end_state}) before {stage}"
            assert time.monotonic() < deadline, f"{task_id} did not reach {stage}"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("console")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text)
    (corpus / "hostile.md").write_text(HOSTILE)
    stack = EmbeddedStack(data_dir=root / "data", binaries=find_binaries())
    stack.start()
    try:
        endpoint = stack.endpoint
        assert isinstance(endpoint, RuntimeEndpoint)
        with (
            research_worker(endpoint, llm_config=LLMConfig(), offline=True),
            ResearchClient(endpoint) as client,
        ):
            sock = listen("127.0.0.1", 0)
            port = sock.getsockname()[1]
            token = new_token()
            app = create_app(
                client,
                ConsoleConfig(
                    token=token,
                    hosts=allowed_hosts("127.0.0.1", port),
                    scorecard=root / "no-scorecard.json",
                    baseline=package_path("evals", "data") / "baseline.json",
                ),
            )
            url = base_url("127.0.0.1", port)
            client.store.set_ui_address(url)
            server = uvicorn.Server(
                uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
            )
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            thread.start()
            while not server.started:
                time.sleep(0.05)
            try:
                yield Console(url=url, token=token, client=client, corpus=corpus)
            finally:
                server.should_exit = True
                thread.join(timeout=10)
                sock.close()
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
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
