"""Fixtures for pipeline tests: a research worker on the real sidecar, LLM mocked over HTTP."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from fte import artifacts
from fte.client import ResearchClient
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from fte.llm import LLMConfig
from fte.wiring import research_worker
from fte.worker import WorkflowWorker
from tests.support.scripted_llm import ScriptedLLM

OPENAI_URL = "https://api.openai.com/v1/chat/completions"
TEST_KEY = "sk-test-NEVER-LOG-ME-1234567890"

SUB_QUESTIONS = [
    "How do durable timers fire after a restart?",
    "How do retry policies space out attempts?",
    "How does compensation undo partial work?",
    "How do approval gates wait for people?",
]

CORPUS = {
    "timers.md": "# Durable timers\n\nDurable timers are stored by the scheduler and fire "
    "after a restart because their due time is persisted.\n\nA timer that was due while the "
    "process was down fires as soon as the worker reconnects.\n",
    "retries.md": "# Retry policies\n\nRetry policies space out attempts with an exponential "
    "backoff coefficient.\n\nEach attempt of an activity is recorded in the workflow history.\n",
    "compensation.md": "# Compensation\n\nCompensation undoes partial work by running the "
    "inverse of each completed step in reverse order.\n\nA compensation step must itself be "
    "idempotent because it may run more than once.\n",
    "approvals.md": "# Approval gates\n\nApproval gates wait for people by pausing the workflow "
    "on an external event.\n\nA reminder timer nudges the approver while the gate waits.\n",
    "unrelated.txt": "Bananas ripen faster next to apples because of ethylene gas.\n",
}


@pytest.fixture(scope="session")
def llm_http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# Package-scoped: it must be gone before another package's tests connect a worker with
# other workflows to the same session sidecar, which would hand work to either of them.
@pytest.fixture(scope="package")
def pipeline_worker(
    dapr_stack: RuntimeEndpoint, llm_http: httpx.Client
) -> Iterator[WorkflowWorker]:
    config = LLMConfig(api_key=SecretStr(TEST_KEY), backoff_base_s=0.05, max_retry_after_s=1)
    with research_worker(dapr_stack, llm_config=config, http_client=llm_http) as worker:
        yield worker


@pytest.fixture
def research(
    pipeline_worker: WorkflowWorker, dapr_stack: RuntimeEndpoint
) -> Iterator[ResearchClient]:
    with ResearchClient(dapr_stack) as client:
        yield client


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in CORPUS.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def mock_llm() -> Iterator[respx.MockRouter]:
    """respx around the OpenAI endpoint; any other HTTP request fails the test."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


def install(router: respx.MockRouter, llm: ScriptedLLM) -> ScriptedLLM:
    router.post(OPENAI_URL).mock(side_effect=llm)
    return llm


def stored_artifact_keys(stack: EmbeddedStack, task_id: str) -> list[str]:
    """Artifact keys of `task_id` as they sit in the SQLite state store file itself."""
    with sqlite3.connect(stack.data_dir / "state.db") as db:
        rows = db.execute(
            "SELECT key FROM state WHERE key LIKE ?",
            (f"%{artifacts.artifact_key(task_id, '')}%",),
        ).fetchall()
    return sorted(row[0] for row in rows)
