"""Benchmark: how long the web console takes to answer its pages as runs accumulate.

The runs page reads every run's state from the engine on each refresh (every 2 s while
open), and a run page reads the run's state, artifacts and child instances (every 1 s).
This starts a private stack and an offline worker, starts runs that stop at the approval
gate, and times the pages (server side, through Starlette's TestClient) at each size,
side by side in one run. Prints the numbers.

    python benchmarks/ui_pages.py [--sizes 10,50,200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from fte.client import ResearchClient
from fte.contracts import OFFLINE_MODEL, AgentModels, ModelEndpoint, RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack
from fte.llm import LLMConfig
from fte.logs import configure_logging
from fte.ui.app import ConsoleConfig, create_app
from fte.ui.security import allowed_hosts, cookie_name, new_token
from fte.wiring import research_worker


def _median_ms(client: TestClient, path: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text[:200]
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = sorted(int(n) for n in args.sizes.split(","))
    configure_logging(level="critical")
    corpus = Path(__file__).resolve().parents[1] / "examples" / "corpus"
    models = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))
    with tempfile.TemporaryDirectory() as tmp:
        stack = EmbeddedStack(data_dir=Path(tmp) / "data", binaries=find_binaries())
        endpoint = stack.start()
        try:
            with (
                research_worker(endpoint, llm_config=LLMConfig(), offline=True),
                ResearchClient(endpoint) as research,
            ):
                token = new_token()
                app = create_app(
                    research,
                    ConsoleConfig(
                        token=token,
                        hosts=allowed_hosts("127.0.0.1", 8765),
                        scorecard=Path(tmp) / "none.json",
                        baseline=Path(tmp) / "none.json",
                    ),
                )
                http = TestClient(app, base_url="http://127.0.0.1:8765")
                http.cookies.set(cookie_name(token), token)
                print(f"{'runs':>6} {'runs page ms':>13} {'one run page ms':>16}")
                started = 0
                for size in sizes:
                    while started < size:
                        config = RunConfig(
                            query=f"How do durable timers fire after a restart? ({started})",
                            corpus_dir=str(corpus),
                            endpoint=ModelEndpoint(offline=True),
                            models=models,
                            require_approval=True,
                        )
                        research.start(config, f"bench-{started:04d}")
                        started += 1
                    last = f"bench-{started - 1:04d}"
                    runs_ms = _median_ms(http, "/runs/live", args.repeat)
                    run_ms = _median_ms(http, f"/runs/{last}/live", args.repeat)
                    print(f"{size:>6} {runs_ms:>13.0f} {run_ms:>16.0f}", flush=True)
                for index in range(started):
                    research.cancel(f"bench-{index:04d}")
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
