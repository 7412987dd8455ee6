"""Upgrading the coordinator under a run in flight: the run finishes on the version it
started with, new runs start on the latest.

The upgrade is a real one: `research_workflow_v2` composes the real stages with one
more, `announce`, which calls an activity that v1 never calls. A run waits at the
approval gate on a worker serving v1 only; that worker stops, a worker serving v1 and
v2 (latest) starts, and the run is approved there. The harness tests at the end show
the same upgrade quickly, and what it would do to the run without versions.
"""

from __future__ import annotations

import functools
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import httpx
import pytest
import respx
from pydantic import SecretStr

from fte import artifacts, names
from fte.agents import planner
from fte.client import ResearchClient
from fte.contracts import (
    AgentReply,
    ApprovalDecision,
    Outcome,
    RunConfig,
    SubQuestion,
    TokenUsage,
)
from fte.coordinator import CoordinatorFn, conduct, research_workflow, stages
from fte.coordinator.approval import approval_gate
from fte.coordinator.run import Flow, Run
from fte.dapr_stack import EmbeddedStack
from fte.llm import LLMConfig
from fte.retry_policies import IO_RETRY
from fte.wiring import register, research_worker
from fte.worker import Registrar, Registry
from tests.pipeline.conftest import SUB_QUESTIONS, TEST_KEY, install, stored_artifact_keys
from tests.support.orchestration import Activity, Child, Completed, Failed, WorkflowHarness
from tests.support.scripted_llm import (
    ANALYST,
    FACT_CHECK,
    PLANNER,
    QUERIES,
    RELEVANCE,
    WRITER,
    ScriptedLLM,
)

RUN_TIMEOUT_S = 120
ANNOUNCE_PLAN = "test.announce_plan"  # the activity only v2 calls


# -- v2: the coordinator with one more stage ----------------------------------------------


def announce(run: Run, research_plan: planner.Plan) -> Flow:
    """v2's extra stage, between planning and the approval gate: announce the plan."""
    yield from run.wait(
        run.ctx.call_activity(
            ANNOUNCE_PLAN,
            input={
                "task_id": run.task_id,
                "sub_questions": [q.text for q in research_plan.sub_questions],
            },
            retry_policy=IO_RETRY,
        )
    )


def pipeline_v2(run: Run) -> Flow:
    """v1's stages with `announce` after planning."""
    plan = yield from stages.plan(run)
    yield from announce(run, plan)
    if run.cfg.require_approval:
        plan = yield from approval_gate(run, plan)
    sources = yield from stages.find_sources(run, plan)
    analysis = yield from stages.analyse(run, plan, sources)
    checked = yield from stages.fact_check(run, analysis, sources)
    draft = yield from stages.write(run, plan, checked, sources)
    return (yield from stages.finalize(run, plan, sources, checked.checked, draft))


def research_workflow_v2(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    return (yield from conduct(ctx, raw, pipeline_v2))


V1: Mapping[str, CoordinatorFn] = {"v1": research_workflow}
V1_V2: Mapping[str, CoordinatorFn] = {"v1": research_workflow, "v2": research_workflow_v2}


class Announcements:
    """The ANNOUNCE_PLAN activity: records which runs announced their plan."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.task_ids: list[str] = []

    def record(self, ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> None:
        with self._lock:
            self.task_ids.append(str(raw["task_id"]))


def upgraded(announcements: Announcements) -> Registrar:
    """The upgraded worker: v1 for runs in flight, v2 for new runs, and v2's activity."""

    def registrar(registry: Registry) -> None:
        register(registry, coordinator_versions=V1_V2, latest="v2")
        registry.activity(ANNOUNCE_PLAN, announcements.record)

    return registrar


# -- on the real engine ------------------------------------------------------------------


def _await_stage(research: ResearchClient, task_id: str, stage: str) -> None:
    for snap in research.follow(task_id, poll_s=0.05):
        if snap.progress is not None and snap.progress.stage == stage:
            return
        assert not snap.finished, f"{task_id} ended before reaching {stage}: {snap}"


@pytest.mark.engine
def test_run_in_flight_finishes_on_v1_and_new_runs_use_v2(
    # A stack of this test's own, not the session's: the engine hands work items to
    # any worker connected to the sidecar, and the package-scoped `pipeline_worker`
    # (the production registry, no ANNOUNCE_PLAN) stays connected to the shared one once
    # any test of this package has started it. It could start the new run on v1 or fail
    # v2's extra activity, and a check for it could only skip the test. Here no other
    # worker can connect.
    private_stack: EmbeddedStack,
    mock_llm: respx.MockRouter,
    llm_http: httpx.Client,
    corpus: Path,
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    llm = install(mock_llm, ScriptedLLM(SUB_QUESTIONS))
    config = LLMConfig(api_key=SecretStr(TEST_KEY), backoff_base_s=0.05, max_retry_after_s=1)
    worker = functools.partial(research_worker, endpoint, llm_config=config, http_client=llm_http)
    query = "How do durable workflows stay reliable?"
    old_run, new_run = (f"upgrade-{uuid.uuid4().hex[:8]}-{which}" for which in ("old", "new"))
    announcements = Announcements()

    with ResearchClient(endpoint) as research:
        with worker(registrar=functools.partial(register, coordinator_versions=V1, latest="v1")):
            research.start(
                RunConfig(query=query, corpus_dir=str(corpus), require_approval=True), old_run
            )
            _await_stage(research, old_run, "awaiting_approval")
        assert llm.calls == {PLANNER: 1}

        with worker(registrar=upgraded(announcements)):
            research.approve(old_run, ApprovalDecision(approved=True))
            old = research.wait(old_run, timeout_s=RUN_TIMEOUT_S)
            research.start(RunConfig(query=query, corpus_dir=str(corpus)), new_run)
            new = research.wait(new_run, timeout_s=RUN_TIMEOUT_S)

        assert old.end_state == "completed", (old.failure, old.progress)
        assert new.end_state == "completed", (new.failure, new.progress)
        # The old run replayed on v1 after the upgrade: v2's stage never ran for it,
        # and nothing it had done before the upgrade was done again.
        assert announcements.task_ids == [new_run]
        assert llm.calls == {
            PLANNER: 2,
            QUERIES: 8,
            RELEVANCE: 8,
            ANALYST: 2,
            FACT_CHECK: 2,
            WRITER: 2,
        }
        report = research.report(old_run)
        assert report["task_id"] == old_run and report["sources"]
        report_key = artifacts.artifact_key(old_run, artifacts.REPORT)
        assert any(k.endswith(report_key) for k in stored_artifact_keys(private_stack, old_run))


# -- the same upgrade on the harness ---------------------------------------------------------


def _planned(raw: Any) -> Any:
    plan = planner.Plan(sub_questions=SubQuestion.numbered(SUB_QUESTIONS), rationale="scripted")
    return AgentReply(result=plan.model_dump(mode="json"), usage=TokenUsage()).model_dump(
        mode="json"
    )


def _answered(raw: Any) -> None:
    return None


RESPONDERS = {
    names.agent_activity(planner.AGENT.name): _planned,
    names.NOTIFY: _answered,
    ANNOUNCE_PLAN: _answered,
}


def _at_gate(register: Registrar) -> WorkflowHarness:
    h = WorkflowHarness(register, names.COORDINATOR, instance_id="r1")
    h.start(RunConfig(query="q", corpus_dir="/corpus", require_approval=True).model_dump())
    h.run_until_blocked(RESPONDERS)
    return h


def _unversioned(coordinator: CoordinatorFn) -> Registrar:
    """How the coordinator was registered before it had versions."""
    return lambda registry: registry.workflow(names.COORDINATOR, coordinator)


def _approve(h: WorkflowHarness) -> list[str]:
    """Approve; what the run does next (children by instance ID, activities by name)."""
    actions = h.raise_event(names.APPROVAL_EVENT, {"approved": True}).step()
    return [
        a.instance_id if isinstance(a, Child) else a.name
        for a in actions
        if isinstance(a, Activity | Child)
    ]


SOURCE_FINDERS = [f"r1.sources.q{i}" for i in range(1, len(SUB_QUESTIONS) + 1)]


def test_with_versions_the_run_in_flight_keeps_v1() -> None:
    old = _at_gate(functools.partial(register, coordinator_versions=V1, latest="v1"))
    assert _approve(old.reregister(upgraded(Announcements()))) == SOURCE_FINDERS

    new = _at_gate(upgraded(Announcements()))
    assert ANNOUNCE_PLAN in [a.name for a in new.issued if isinstance(a, Activity)]
    assert _approve(new) == SOURCE_FINDERS


def test_without_versions_the_same_upgrade_breaks_the_run_in_flight() -> None:
    h = _at_gate(_unversioned(research_workflow))
    h.reregister(_unversioned(research_workflow_v2))
    assert _approve(h) == []
    # v2 replays the v1 history and wants ANNOUNCE_PLAN where v1 sent the approval request.
    assert isinstance(h.result, Failed) and h.result.error_type == "NonDeterminismError"
    assert ANNOUNCE_PLAN in h.result.message and names.NOTIFY in h.result.message


def test_v2_is_a_working_coordinator_on_its_own() -> None:
    h = _at_gate(_unversioned(research_workflow_v2))
    h.raise_event(names.CANCEL_EVENT, {"reason": "enough"}).step()
    h.run_until_blocked({**RESPONDERS, names.DELETE_ARTIFACTS: _answered})
    assert isinstance(h.result, Completed)
    assert Outcome.model_validate(h.result.output).reason == "cancelled: enough"
