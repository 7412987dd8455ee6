"""Kill the worker process during the analyst stage, or during the source finders'
relevance judgements; a new worker finishes the run without repeating the LLM calls that
had been answered."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fte.client import ResearchClient, Snapshot
from fte.contracts import ModelEndpoint, RunConfig
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from tests.pipeline.conftest import SUB_QUESTIONS, TEST_KEY
from tests.support.processes import LoggedProcess, wait_for
from tests.support.scripted_llm import (
    ANALYST,
    FACT_CHECK,
    PLANNER,
    QUERIES,
    RELEVANCE,
    WRITER,
    ScriptedLLM,
)

pytestmark = pytest.mark.engine


class WorkerProcess(LoggedProcess):
    """`python -m fte worker` attached to a given sidecar, as an operator would run it."""

    def __init__(self, endpoint: RuntimeEndpoint, llm_url: str, log_path: Path) -> None:
        env = {
            **os.environ,
            "DAPR_GRPC_PORT": str(endpoint.grpc_port),
            "DAPR_HTTP_PORT": str(endpoint.http_port),
            "DAPR_API_TOKEN": endpoint.api_token or "",
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": TEST_KEY,
        }
        env.pop("DAPR_GRPC_ENDPOINT", None)
        super().__init__([sys.executable, "-m", "fte", "worker"], log_path, env=env)
        wait_for(
            lambda: self.alive() and "serving research runs" in self.log(),
            "the worker to start",
            timeout=60,
        )


@dataclass
class KilledMidCall:
    """A run whose worker was killed while the model held `agent`'s calls, finished by a
    second worker: the model's calls when the first died (`before`) and in all (`llm`)."""

    before: dict[str, int]
    llm: ScriptedLLM
    snap: Snapshot
    sources: list[str]


def kill_during(
    stack: EmbeddedStack,
    corpus: Path,
    tmp_path: Path,
    agent: str,
    held: Callable[[ScriptedLLM], bool],
) -> KilledMidCall:
    """Start a run on a worker process, SIGKILL it once `held(llm)` (with `agent`'s calls
    held), start a second worker, release the calls and wait for the run."""
    endpoint = stack.endpoint
    assert endpoint is not None
    llm = ScriptedLLM(SUB_QUESTIONS)
    release = llm.hold(agent)
    with llm.serve() as llm_url, ResearchClient(endpoint) as research:
        first = WorkerProcess(endpoint, llm_url, tmp_path / "worker-1.log")
        second = None
        try:
            task_id = research.start(
                RunConfig(
                    query="How do durable workflows stay reliable?",
                    corpus_dir=str(corpus),
                    # The run names its model server; the worker process serves that one.
                    endpoint=ModelEndpoint(base_url=llm_url),
                ),
                f"kill-during-{agent}",
            )
            wait_for(lambda: held(llm), f"{agent}'s calls to be held", 120)
            first.sigkill()
            before = dict(llm.calls)

            second = WorkerProcess(endpoint, llm_url, tmp_path / "worker-2.log")
            release.set()
            snap = research.wait(task_id, timeout_s=120)
        finally:
            first.stop()
            if second is not None:
                second.stop()
        sources = [s["id"] for s in research.report(task_id)["sources"]]
    return KilledMidCall(before, llm, snap, sources)


def test_sigkill_during_analyst_resumes_without_repeating_llm_calls(
    private_stack: EmbeddedStack, corpus: Path, tmp_path: Path
) -> None:
    run = kill_during(
        private_stack, corpus, tmp_path, ANALYST, lambda llm: llm.arrived[ANALYST].is_set()
    )

    assert run.snap.end_state == "completed", (run.snap.failure, run.snap.progress)
    assert run.before == {PLANNER: 1, QUERIES: 4, RELEVANCE: 4, ANALYST: 1}
    # Finished LLM calls were not redone; only the analyst call that died with the
    # first worker ran again.
    assert run.llm.calls == {
        PLANNER: 1,
        QUERIES: 4,
        RELEVANCE: 4,
        ANALYST: 2,
        FACT_CHECK: 1,
        WRITER: 1,
    }
    assert run.sources, "the completed run has a report with sources"


def test_sigkill_during_relevance_judgements_does_not_ask_for_the_queries_again(
    private_stack: EmbeddedStack, corpus: Path, tmp_path: Path
) -> None:
    """A source finder is one activity (coordinator v5): its query proposal's answer is kept
    when it comes, so the activity run again by a new worker asks only for the judgement."""
    run = kill_during(
        private_stack, corpus, tmp_path, RELEVANCE, lambda llm: llm.calls[RELEVANCE] == 4
    )

    assert run.snap.end_state == "completed", (run.snap.failure, run.snap.progress)
    assert run.before == {PLANNER: 1, QUERIES: 4, RELEVANCE: 4}
    # The judgements died with the first worker and were asked again; the queries were not.
    assert run.llm.calls == {
        PLANNER: 1,
        QUERIES: 4,
        RELEVANCE: 8,
        ANALYST: 1,
        FACT_CHECK: 1,
        WRITER: 1,
    }
    assert run.sources
