"""The research pipeline end to end on the real Dapr engine, with the LLM scripted over HTTP."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import respx
import structlog

from fte.agents.writer import WriterInput
from fte.client import ResearchClient
from fte.contracts import ApprovalDecision, RunConfig
from fte.dapr_stack import EmbeddedStack
from fte.worker import WorkflowWorker
from tests.pipeline.conftest import SUB_QUESTIONS, install, stored_artifact_keys
from tests.support.scripted_llm import (
    ANALYST,
    FACT_CHECK,
    PLANNER,
    QUERIES,
    RELEVANCE,
    WRITER,
    Reply,
    ScriptedLLM,
    default_writer,
)

pytestmark = pytest.mark.engine

RUN_TIMEOUT_S = 120


def _task_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _config(corpus: Path, **overrides: Any) -> RunConfig:
    return RunConfig(
        query="How do durable workflows stay reliable?", corpus_dir=str(corpus), **overrides
    )


def test_happy_path_four_sub_questions(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = research.start(_config(corpus), _task_id())

    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "completed", (snap.failure, snap.progress)
    assert llm.calls == {PLANNER: 1, QUERIES: 4, RELEVANCE: 4, ANALYST: 1, FACT_CHECK: 1, WRITER: 1}
    progress = snap.progress
    assert progress is not None and progress.stage == "completed"
    assert [q.state for q in progress.sub_questions] == ["done"] * 4
    assert progress.sources_found >= 4
    assert progress.usage.calls == 12 and progress.usage.total_tokens > 0

    report = research.report(task_id)
    retrieved = {s["id"] for s in report["sources"]}
    cited = {
        sid for sec in report["sections"] for p in sec["paragraphs"] for sid in p["source_ids"]
    }
    assert cited and cited <= retrieved
    supported = {c["claim"]["id"] for c in report["claims"] if c["verdict"] == "supported"}
    used = {cid for sec in report["sections"] for p in sec["paragraphs"] for cid in p["claim_ids"]}
    assert used and used <= supported
    assert report["integrity"]["unknown_sources"] == 0
    assert report["usage_total"]["calls"] == 12
    assert set(report["usage_by_agent"]) == {
        "planner",
        "source_finder",
        "analyst",
        "fact_checker",
        "writer",
    }
    # Numbered citations in the text, each resolving to an entry of the sources list.
    markdown = report["markdown"]
    numbers = {int(n) for n in re.findall(r"\[(\d+)\]", markdown)}
    listed = {int(n) for n in re.findall(r"^(\d+)\. ", markdown, re.MULTILINE)}
    assert numbers and numbers == listed
    # Every sub-question's artifacts are stored under the task ID.
    keys = stored_artifact_keys(embedded_stack, task_id)
    for name in ("plan", "sources", "notes", "claims", "draft", "report"):
        assert any(k.endswith(f":{name}") for k in keys), name
    assert sum(".q" in k for k in keys) == 4


def test_a_run_purged_and_started_again_under_its_id_asks_the_model_again(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    # Activities keep their model answers for an hour so a redelivery does not ask twice;
    # a new run under a purged run's ID is a new scheduling of every activity, not one.
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = _task_id()
    for _ in range(2):
        research.start(_config(corpus), task_id)
        snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
        assert snap.end_state == "completed", (snap.failure, snap.progress)
        research.purge(task_id)
    twice = {PLANNER: 2, QUERIES: 8, RELEVANCE: 8, ANALYST: 2, FACT_CHECK: 2, WRITER: 2}
    assert llm.calls == twice


def test_writer_citing_a_source_that_was_not_retrieved_is_caught(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    def writer_with_bad_citations(inputs: WriterInput) -> Any:
        draft = default_writer(inputs)
        draft["sections"].append(
            {
                "heading": "Invented",
                "paragraphs": [
                    {
                        "text": "The sources answer the plan.",
                        "claim_ids": [],
                        "source_ids": ["S99"],
                    },
                    {
                        "text": "These findings settle it.",
                        "claim_ids": ["C77"],
                        "source_ids": ["S1"],
                    },
                ],
            }
        )
        return draft

    install(mock_llm, ScriptedLLM(SUB_QUESTIONS, **{WRITER: writer_with_bad_citations}))
    task_id = research.start(_config(corpus), _task_id())
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"

    report = research.report(task_id)
    integrity = report["integrity"]
    assert integrity["unknown_sources"] == 1
    assert integrity["unsupported_claims"] == 1
    assert integrity["paragraphs_removed"] == 2
    headings = [s["heading"] for s in report["sections"]]
    assert "Invented" not in headings
    assert "S99" not in report["markdown"]


def test_mark_policy_keeps_violations_visible(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    def writer(inputs: WriterInput) -> Any:
        draft = default_writer(inputs)
        draft["sections"][0]["paragraphs"].append(
            {"text": "The sources confirm these findings.", "claim_ids": [], "source_ids": ["S99"]}
        )
        return draft

    install(mock_llm, ScriptedLLM(SUB_QUESTIONS, **{WRITER: writer}))
    task_id = research.start(_config(corpus, citation_policy="mark"), _task_id())
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"
    report = research.report(task_id)
    assert report["integrity"]["marked"] == 1
    assert "unverified source S99" in report["markdown"]


PER_QUESTION = (QUERIES, RELEVANCE)
UNAUTHORIZED = Reply(
    401, {"error": {"message": "Incorrect API key", "type": "invalid_request_error"}}
)


@pytest.mark.parametrize(
    ("agent", "stage"),
    [
        pytest.param(PLANNER, "planning", id="planner"),
        pytest.param(QUERIES, "finding_sources", id="source-finder-queries"),
        pytest.param(RELEVANCE, "finding_sources", id="source-finder-relevance"),
        pytest.param(ANALYST, "analysing", id="analyst"),
        pytest.param(FACT_CHECK, "fact_checking", id="fact-checker"),
        pytest.param(WRITER, "writing", id="writer"),
    ],
)
def test_failure_at_each_stage_compensates_every_artifact(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
    agent: str,
    stage: str,
) -> None:
    # Only the first call fails, so sibling source finders can write artifacts too.
    healthy = ScriptedLLM(SUB_QUESTIONS).handlers[agent]
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS, **{agent: [UNAUTHORIZED, healthy]}))
    task_id = research.start(_config(corpus), _task_id())

    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.runtime_status == "FAILED"
    assert snap.end_state == "failed"
    assert snap.progress is not None and snap.progress.reason is not None
    assert snap.progress.reason.startswith(f"{stage}:")
    assert "LLMAuthError" in snap.progress.reason
    assert snap.failure is not None and "research run failed" in snap.failure
    # A permanent error is not retried: exactly one 401 was served, and the
    # failing call was not repeated (no retry storm).
    assert llm.statuses[agent].count(401) == 1
    assert llm.calls[agent] == len(llm.statuses[agent]) <= (4 if agent in PER_QUESTION else 1)
    assert stored_artifact_keys(embedded_stack, task_id) == []
    with pytest.raises(Exception, match="has no report"):
        research.report(task_id)


def test_transient_failures_are_retried_by_both_layers(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    # Three 500s use up one activity attempt's HTTP budget; the workflow's retry
    # policy then runs a second attempt, whose first request succeeds.
    server_error = Reply(500, {"error": {"message": "upstream overloaded", "type": "server_error"}})
    planned = {"sub_questions": SUB_QUESTIONS, "rationale": "after retries"}
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS, **{PLANNER: [server_error] * 3 + [planned]}))
    task_id = research.start(_config(corpus), _task_id())
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"
    assert llm.calls[PLANNER] == 4


def test_invalid_json_twice_fails_cleanly_after_two_calls(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    garbage = Reply(200, None, raw_content="Sure! Here are your sub-questions: 1) ...")
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS, **{PLANNER: [garbage, garbage]}))
    task_id = research.start(_config(corpus), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "failed"
    assert snap.progress is not None and "LLMOutputError" in (snap.progress.reason or "")
    assert llm.calls[PLANNER] == 2
    assert stored_artifact_keys(embedded_stack, task_id) == []


def test_cancel_mid_run_compensates(
    research: ResearchClient,
    pipeline_worker: WorkflowWorker,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    release = llm.hold(ANALYST)
    task_id = research.start(_config(corpus), _task_id())
    assert llm.arrived[ANALYST].wait(timeout=RUN_TIMEOUT_S)
    assert stored_artifact_keys(embedded_stack, task_id), "sources were stored before analysis"

    research.cancel(task_id, reason="changed my mind")
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "cancelled"
    assert snap.runtime_status == "COMPLETED"
    assert snap.progress is not None and snap.progress.reason == "cancelled: changed my mind"
    assert stored_artifact_keys(embedded_stack, task_id) == []

    # The held analyst call is still running (terminating its child workflow does not stop
    # an activity). Answered only now, it writes its notes and must take them back: once it
    # has returned, nothing of the run is stored.
    release.set()
    assert pipeline_worker.wait_idle(RUN_TIMEOUT_S), "the held analyst call never returned"
    assert llm.calls[ANALYST] == 1
    assert stored_artifact_keys(embedded_stack, task_id) == []


# -- the approval gate ------------------------------------------------------------


def _await_stage(research: ResearchClient, task_id: str, stage: str) -> None:
    for snap in research.follow(task_id, poll_s=0.1):
        if snap.progress is not None and snap.progress.stage == stage:
            return
        assert not snap.finished, f"run ended before reaching {stage}: {snap}"


def test_approval_approve(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = research.start(_config(corpus, require_approval=True), _task_id())
    _await_stage(research, task_id, "awaiting_approval")
    assert llm.calls[QUERIES] == 0, "nothing is searched before the plan is approved"

    research.approve(task_id, ApprovalDecision(approved=True, comment="go"))
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"
    assert llm.calls[QUERIES] == 4


def test_approval_reject(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = research.start(_config(corpus, require_approval=True), _task_id())
    _await_stage(research, task_id, "awaiting_approval")
    research.approve(task_id, ApprovalDecision(approved=False, comment="too broad"))

    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "rejected"
    assert snap.progress is not None and snap.progress.reason == "too broad"
    assert llm.calls[QUERIES] == 0
    assert stored_artifact_keys(embedded_stack, task_id) == []


def test_approval_with_edited_plan(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = research.start(_config(corpus, require_approval=True), _task_id())
    _await_stage(research, task_id, "awaiting_approval")
    edited = SUB_QUESTIONS[:2] + ["Why must compensation steps be idempotent?"]
    research.approve(task_id, ApprovalDecision(approved=True, sub_questions=edited))

    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "completed"
    assert llm.calls[QUERIES] == 3
    assert [q.text for q in snap.progress.sub_questions] == edited  # type: ignore[union-attr]
    assert any("idempotent" in p for p in llm.prompts[QUERIES])
    report = research.report(task_id)
    assert [q["text"] for q in report["sub_questions"]] == edited


def test_invalid_and_duplicate_approvals_are_harmless(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    task_id = research.start(_config(corpus, require_approval=True), _task_id())
    _await_stage(research, task_id, "awaiting_approval")
    # A payload that fails validation is ignored; the gate keeps waiting.
    research._wf.raise_workflow_event(task_id, "approval", data={"approved": "maybe"})
    research.approve(task_id, ApprovalDecision(approved=True))
    research._wf.raise_workflow_event(task_id, "approval", data={"approved": False})
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"


def test_approval_timeout_sends_reminders_then_rejects(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    config = _config(
        corpus, require_approval=True, approval_timeout_s=3.5, approval_reminder_interval_s=1
    )
    with structlog.testing.capture_logs() as logs:
        task_id = research.start(config, _task_id())
        snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "rejected"
    assert snap.progress is not None
    assert snap.progress.reason is not None and snap.progress.reason.startswith(
        "no approval within"
    )
    assert snap.progress.checkins == 3  # reminders at 1 s, 2 s and 3 s; the deadline at 3.5 s
    assert stored_artifact_keys(embedded_stack, task_id) == []
    # Each notice was published (the notify activity publishes, then logs).
    kinds = [e["kind"] for e in logs if e["event"] == "notice" and e["task_id"] == task_id]
    assert kinds == ["approval_request"] + ["approval_reminder"] * 3 + ["outcome"]


def test_approval_timeout_can_auto_approve(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    config = _config(
        corpus,
        require_approval=True,
        approval_timeout_s=1,
        approval_reminder_interval_s=5,
        auto_approve_on_timeout=True,
    )
    task_id = research.start(config, _task_id())
    assert research.wait(task_id, timeout_s=RUN_TIMEOUT_S).end_state == "completed"


def test_progress_checkins_fire_during_long_stages(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    release = llm.hold(ANALYST)
    task_id = research.start(_config(corpus, progress_checkin_interval_s=1), _task_id())
    assert llm.arrived[ANALYST].wait(timeout=RUN_TIMEOUT_S)
    for snap in research.follow(task_id, poll_s=0.2):
        if snap.progress is not None and snap.progress.checkins >= 2:
            break
    release.set()
    final = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert final.end_state == "completed"
    assert final.progress is not None and final.progress.checkins >= 2
