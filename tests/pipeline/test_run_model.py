"""One run, one model configuration: every activity uses the run's own model server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import respx

from fte.client import ResearchClient
from fte.contracts import OFFLINE_MODEL, AgentModels, ModelEndpoint, RunConfig
from tests.pipeline.conftest import SUB_QUESTIONS, install
from tests.support.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.engine

RUN_TIMEOUT_S = 120
QUERY = "How do durable timers fire after a restart?"


def test_offline_and_online_runs_on_one_worker_keep_their_own_models(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    # The session's worker has a key for the (mocked) OpenAI server. An offline run
    # served by it must never reach that server, and each report names its own model.
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    offline_id, online_id = f"off-{uuid.uuid4().hex[:8]}", f"on-{uuid.uuid4().hex[:8]}"
    research.start(
        RunConfig(
            query=QUERY,
            corpus_dir=str(corpus),
            endpoint=ModelEndpoint(offline=True),
            models=AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL)),
        ),
        offline_id,
    )
    research.start(RunConfig(query=QUERY, corpus_dir=str(corpus)), online_id)

    offline = research.wait(offline_id, timeout_s=RUN_TIMEOUT_S)
    online = research.wait(online_id, timeout_s=RUN_TIMEOUT_S)

    assert offline.end_state == "completed", (offline.failure, offline.progress)
    assert online.end_state == "completed", (online.failure, online.progress)
    # Exactly one run's worth of requests reached the server: the online run's.
    assert sum(llm.calls.values()) == 1 + 4 + 4 + 1 + 1 + 1
    assert "offline" in research.report(offline_id)["llm_endpoint"]
    assert research.report(online_id)["llm_endpoint"].startswith("OpenAI-compatible server")


def test_run_on_a_server_this_worker_has_no_credentials_for_fails_with_the_reason(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = f"elsewhere-{uuid.uuid4().hex[:8]}"
    research.start(
        RunConfig(
            query=QUERY,
            corpus_dir=str(corpus),
            endpoint=ModelEndpoint(base_url="http://models.internal.example/v1"),
        ),
        task_id,
    )

    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "failed"
    assert "cannot serve the run's model" in (snap.failure or "")
    assert "models.internal.example" in (snap.failure or "")
    assert sum(llm.calls.values()) == 0, "no other model answered in its place"
