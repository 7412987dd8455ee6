"""Gap-filling rounds and budgets on the real Dapr engine, the LLM scripted over HTTP.

The scripted model keeps one passage per sub-question (so later rounds have passages left
to find), its analyst answers each sub-question from its own source, and its reviewer
asks one follow-up per round (`FOLLOW_UPS`). The kill -9 test runs the worker as its own
process and counts the requests that reach the model.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
import respx

from fte.agents import analyst, reviewer
from fte.client import ResearchClient
from fte.contracts import ModelEndpoint, RunConfig
from fte.dapr_stack import EmbeddedStack
from fte.layout import ANSWER_PREFIX
from tests.pipeline.conftest import SUB_QUESTIONS, install, stored_artifact_keys
from tests.pipeline.test_worker_kill import WorkerProcess
from tests.support.processes import wait_for
from tests.support.scripted_llm import (
    ANALYST,
    FACT_CHECK,
    PLANNER,
    QUERIES,
    RELEVANCE,
    REVIEWER,
    WRITER,
    Reply,
    ScriptedLLM,
    default_fact_check,
    first_sentence,
)

pytestmark = pytest.mark.engine

RUN_TIMEOUT_S = 180
# One follow-up per round, each worded after a paragraph the first pass does not keep.
FOLLOW_UPS = [
    "Does a timer that was due while the process was down fire when the worker reconnects?",
    "Why must a compensation step be idempotent if it may run more than once?",
    "Is each attempt of an activity recorded in the workflow history?",
]
CALL_TOKENS = (1000, 100)  # what every scripted reply reports in the budget test


# Documents only a round's follow-up finds (each small file is one passage).
MORE_DOCUMENTS = {
    "timer-reconnect.md": "# Missed timers\n\nA timer that was due while the process was down "
    "fires when the worker reconnects.\n",
    "idempotent-compensation.md": "# Idempotent compensation\n\nA compensation step must be "
    "idempotent because it may run more than once.\n",
    "attempt-history.md": "# Attempt history\n\nEach attempt of an activity is recorded in the "
    "workflow history.\n",
}


@pytest.fixture
def corpus(corpus: Path) -> Path:
    for name, text in MORE_DOCUMENTS.items():
        (corpus / name).write_text(text)
    return corpus


def analyse_by_question(inputs: analyst.AnalystInput) -> Any:
    """Source i answers sub-question i (the first pass keeps one source per sub-question)."""
    questions = inputs.sub_questions
    return {
        "claims": [
            {
                "text": first_sentence(s.text),
                "source_ids": [s.id],
                "sub_question_id": questions[min(i, len(questions) - 1)].id,
            }
            for i, s in enumerate(inputs.sources)
        ],
        "summary": "scripted analysis",
    }


def follow_up(question: str) -> Any:
    def answer(inputs: reviewer.ReviewInput) -> Any:
        return {"gaps": [{"kind": "follow_up", "question": question}]}

    return answer


def scripted(**overrides: Any) -> ScriptedLLM:
    handlers: dict[str, Any] = {
        ANALYST: analyse_by_question,
        REVIEWER: [follow_up(q) for q in FOLLOW_UPS],
    }
    return ScriptedLLM(SUB_QUESTIONS, **{**handlers, **overrides})


def config(corpus: Path, **overrides: Any) -> RunConfig:
    return RunConfig(
        query="How do durable workflows stay reliable?",
        corpus_dir=str(corpus),
        sources_per_question=1,
        search_candidates=1,
        **overrides,
    )


def _task_id() -> str:
    return f"rounds-{uuid.uuid4().hex[:10]}"


def test_two_rounds_find_check_and_report_what_the_first_pass_missed(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    llm = install(mock_llm, scripted())
    task_id = research.start(config(corpus, depth=2), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "completed", (snap.failure, snap.progress)
    assert llm.calls[REVIEWER] == 2
    assert (llm.calls[ANALYST], llm.calls[FACT_CHECK], llm.calls[WRITER]) == (3, 3, 1)
    report = research.report(task_id)
    rounds = report["rounds"]
    assert [[g["question"] for g in r["looked_for"]] for r in rounds] == [
        [FOLLOW_UPS[0]],
        [FOLLOW_UPS[1]],
    ]
    first_pass = {s["id"] for s in report["sources"]} - {
        s for r in rounds for s in r["sources_found"]
    }
    assert len(first_pass) == len(SUB_QUESTIONS)
    for r in rounds:
        assert r["sources_found"] and r["claims_added"], r
        assert r["supported_added"] == len(r["claims_added"])
    added = {c for r in rounds for c in r["claims_added"]}
    assert added <= {c["claim"]["id"] for c in report["claims"]}
    # The writer saw the rounds' supported claims too.
    used = {c for s in report["sections"] for p in s["paragraphs"] for c in p["claim_ids"]}
    assert added & used
    assert "## Research rounds" in report["markdown"]
    assert snap.progress is not None and snap.progress.round == 2
    assert [r.state for r in snap.progress.rounds] == ["done", "done"]
    keys = stored_artifact_keys(embedded_stack, task_id)
    assert any(k.endswith(":notes.round2") for k in keys)
    assert any(k.endswith(":review.round1") for k in keys)


def priced_alike() -> ScriptedLLM:
    """The scripted model, every reply reporting CALL_TOKENS: a budget counts in calls."""
    llm = scripted()
    llm.usage = lambda agent, prompt, content: CALL_TOKENS
    return llm


def test_budget_ends_the_research_and_the_run_completes_with_a_report(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, priced_alike())
    per_call = sum(CALL_TOKENS)
    # First pass: planner, 4 x (queries + relevance), analyst, fact checker = 11 calls.
    # Round 1 fits its reviewer, then its one gap's search, analysis, fact check and the
    # writer exactly; round 2's reviewer does not fit.
    limit = (11 + 1 + 2 + 3) * per_call
    task_id = research.start(config(corpus, depth=2, budget={"tokens": limit}), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "completed", (snap.failure, snap.progress)
    assert snap.outcome is not None and snap.outcome.spend is not None
    assert snap.outcome.spend.tokens <= limit
    assert snap.outcome.spend.tokens == sum(llm.calls.values()) * per_call
    assert llm.calls[REVIEWER] == 1 and llm.calls[WRITER] == 1
    reason = snap.outcome.reason
    assert reason is not None and reason.startswith(
        "the budget ended the research: round 2 was not started"
    )
    report = research.report(task_id)
    assert report["spend"]["stopped"] == reason
    assert "**The budget ended the research: round 2 was not started" in report["markdown"]


def test_cancel_during_a_round_leaves_no_artifact_of_any_round(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    llm = install(mock_llm, scripted())
    release = llm.hold(FACT_CHECK, from_call=2)  # round 1's fact check
    task_id = research.start(config(corpus, depth=2), _task_id())
    assert llm.arrived[FACT_CHECK].wait(timeout=RUN_TIMEOUT_S)
    keys = stored_artifact_keys(embedded_stack, task_id)
    assert any(k.endswith(":notes.round1") for k in keys), keys

    research.cancel(task_id, reason="enough")
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
    assert snap.end_state == "cancelled"
    assert stored_artifact_keys(embedded_stack, task_id) == []

    # The held fact check is still running (terminating its child workflow does not stop an
    # activity): answered only now, after compensation, it writes its artifact, together
    # with its kept answer, and must take the artifact back.
    release.set()
    wait_for(
        lambda: bool(_kept_answers(embedded_stack, f"{task_id}.fact_checker.round1")),
        "the late fact check's write",
        RUN_TIMEOUT_S,
    )
    wait_for(
        lambda: stored_artifact_keys(embedded_stack, task_id) == [],
        "the late fact check's artifact taken back",
        10,
    )


def _kept_answers(stack: EmbeddedStack, workflow_id: str) -> list[str]:
    with sqlite3.connect(stack.data_dir / "state.db") as db:
        rows = db.execute(
            "SELECT key FROM state WHERE key LIKE ?", (f"%{ANSWER_PREFIX}:{workflow_id}:%",)
        ).fetchall()
    return [row[0] for row in rows]


def test_sigkill_during_round_two_resumes_there_without_redoing_round_one(
    private_stack: EmbeddedStack, corpus: Path, tmp_path: Path
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    llm = scripted()
    release = llm.hold(ANALYST, from_call=3)  # first pass, round 1, then round 2's
    with llm.serve() as llm_url, ResearchClient(endpoint) as research:
        first = WorkerProcess(endpoint, llm_url, tmp_path / "worker-1.log")
        second = None
        try:
            task_id = research.start(
                config(corpus, depth=2, endpoint=ModelEndpoint(base_url=llm_url)),
                "kill-in-round-two",
            )
            assert llm.arrived[ANALYST].wait(timeout=RUN_TIMEOUT_S), "round 2 never analysed"
            during = research.snapshot(task_id).progress
            first.sigkill()
            before = dict(llm.calls)

            second = WorkerProcess(endpoint, llm_url, tmp_path / "worker-2.log")
            release.set()
            snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)
        finally:
            first.stop()
            if second is not None:
                second.stop()

    assert during is not None and (during.round, during.stage) == (2, "analysing")
    assert snap.end_state == "completed", (snap.failure, snap.progress)
    searches = len(SUB_QUESTIONS) + 2  # the first pass's, then one gap in each round
    assert before[ANALYST] == 3 and before[REVIEWER] == 2 and before[FACT_CHECK] == 2
    assert before[QUERIES] == searches
    # Only the analyst call that died with the first worker was made again; nothing of
    # the first pass or of round 1 was.
    assert llm.calls == {
        PLANNER: 1,
        QUERIES: searches,
        RELEVANCE: before[RELEVANCE],
        REVIEWER: 2,
        ANALYST: 4,
        FACT_CHECK: 3,
        WRITER: 1,
    }
    assert snap.progress is not None and [r.state for r in snap.progress.rounds] == [
        "done",
        "done",
    ]


def test_a_failure_in_a_round_fails_the_run_and_deletes_every_rounds_artifacts(
    research: ResearchClient,
    mock_llm: respx.MockRouter,
    corpus: Path,
    embedded_stack: EmbeddedStack,
) -> None:
    unauthorized = Reply(401, {"error": {"message": "key revoked", "type": "invalid_request"}})
    # The first pass's fact check and round 1's pass; round 2's is refused for good.
    llm = install(
        mock_llm, scripted(**{FACT_CHECK: [default_fact_check, default_fact_check, unauthorized]})
    )
    task_id = research.start(config(corpus, depth=2), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "failed"
    assert snap.progress is not None and snap.progress.round == 2
    assert (snap.progress.reason or "").startswith("fact_checking: ")
    assert llm.calls[FACT_CHECK] == 3 and llm.calls[WRITER] == 0
    assert stored_artifact_keys(embedded_stack, task_id) == []


def test_steps_the_budget_cannot_pay_for_are_written_by_the_offline_model(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    dear = (9000, 1000)  # the analyst's one call: far more than its estimate
    llm = scripted()
    llm.usage = lambda agent, prompt, content: dear if agent == ANALYST else CALL_TOKENS
    install(mock_llm, llm)
    per_call = sum(CALL_TOKENS)
    # Planner and 4 x 2 source-finder calls, then analyst, fact check and writer: fits
    # exactly as estimated before the fan-out (every call like the planner's).
    limit = (1 + 8 + 3) * per_call
    task_id = research.start(config(corpus, depth=1, budget={"tokens": limit}), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "completed", (snap.failure, snap.progress)
    # The fact check and the writing did not fit after the analyst's dear call: the
    # worker served them from the offline model, so the model server never saw them.
    assert llm.calls[ANALYST] == 1
    assert (llm.calls[FACT_CHECK], llm.calls[WRITER], llm.calls[REVIEWER]) == (0, 0, 0)
    assert snap.outcome is not None and snap.outcome.spend is not None
    spent = snap.outcome.spend.tokens
    assert limit < spent <= limit + sum(dear) - per_call
    reason = snap.outcome.reason or ""
    assert reason.startswith(
        "the budget ended the research: the fact check ran on the built-in offline model"
    )
    report = research.report(task_id)
    assert report["sections"] and report["claims"]
    assert set(report["usage_by_agent"]) == {"planner", "source_finder", "analyst"}


def test_a_budget_too_small_for_a_paid_search_searches_offline_and_completes(
    research: ResearchClient, mock_llm: respx.MockRouter, corpus: Path
) -> None:
    llm = install(mock_llm, priced_alike())
    per_call = sum(CALL_TOKENS)
    # After the planner, one paid search (2 calls) and the report's 3 calls would pass the
    # budget; the analysis, fact check and writing on their own fit.
    limit = (1 + 3) * per_call
    task_id = research.start(config(corpus, depth=1, budget={"tokens": limit}), _task_id())
    snap = research.wait(task_id, timeout_s=RUN_TIMEOUT_S)

    assert snap.end_state == "completed", (snap.failure, snap.progress)
    # The first sub-question was searched by the worker's offline model: the model server
    # never saw a source finder's request.
    assert (llm.calls[QUERIES], llm.calls[RELEVANCE]) == (0, 0)
    assert (llm.calls[PLANNER], llm.calls[ANALYST], llm.calls[WRITER]) == (1, 1, 1)
    assert snap.outcome is not None and snap.outcome.spend is not None
    assert snap.outcome.spend.tokens == sum(llm.calls.values()) * per_call <= limit
    reason = snap.outcome.reason or ""
    assert reason.startswith(
        "the budget ended the research: searched 1 of 4 sub-questions, on the built-in "
        "offline model"
    )
    assert snap.progress is not None
    assert [q.state for q in snap.progress.sub_questions] == [
        "done",
        "pending",
        "pending",
        "pending",
    ]
    report = research.report(task_id)
    assert report["sources"] and report["claims"]
    assert "source_finder" not in report["usage_by_agent"]
