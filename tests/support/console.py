"""The web console on a real stack, for the browser tests and the README's screenshots.

The stack is the real embedded Dapr runtime (its own, so no other test's worker takes its
work), the worker runs the pipeline with the built-in offline model (no HTTP to any model
server at all), and the console is the real app served by uvicorn on a loopback port.
Chromium is Debian's package (`make test` installs it), driven through Playwright's Python
API; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from playwright.sync_api import Browser, Playwright

from fte import package_path
from fte.client import ResearchClient
from fte.config import FteSettings
from fte.contracts import OFFLINE_MODEL, AgentModels, ModelEndpoint, RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from fte.llm import LLMConfig
from fte.research import run_budget
from fte.ui.app import ConsoleConfig, create_app
from fte.ui.security import allowed_hosts, new_token
from fte.ui.server import base_url, listen
from fte.wiring import research_worker

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# What `fte research --offline` names each agent's model (so the cost is $0, as on the CLI).
OFFLINE_MODELS = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))


@dataclass
class Console:
    url: str
    token: str
    client: ResearchClient
    corpus: Path

    def start(
        self,
        task_id: str,
        query: str,
        *,
        approve: bool = False,
        depth: int = 0,
        max_tokens: int | None = None,
        budget_usd: float | None = None,
    ) -> str:
        # The budget as the CLI makes it (the models' prices fixed in it: $0 offline).
        budget = run_budget(
            FteSettings(max_tokens=max_tokens, budget_usd=budget_usd), OFFLINE_MODELS
        )
        config = RunConfig(
            query=query,
            corpus_dir=str(self.corpus),
            endpoint=ModelEndpoint(offline=True),
            models=OFFLINE_MODELS,
            require_approval=approve,
            depth=depth,
            budget=budget,
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


@contextlib.contextmanager
def serve_console(data_dir: Path, corpus: Path, scorecard: Path) -> Iterator[Console]:
    """A private stack, an offline worker and the console on a free loopback port."""
    stack = EmbeddedStack(data_dir=data_dir, binaries=find_binaries())
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
                    scorecard=scorecard,
                    baseline=package_path("evals", "data") / "baseline.json",
                    closing=lambda: server.should_exit,
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
                server.should_exit = True  # open pages' event streams end too
                thread.join(timeout=10)
                assert not thread.is_alive(), "the console did not stop"
                sock.close()
    finally:
        stack.stop()


def launch_chromium(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            "chromium is not installed: make test installs it (apt-get install chromium)"
        )
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
    return playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
