"""The research coordinator: plan → (approval) → sources → analysis → fact check → report.

Orchestration only, deterministic and replay-safe: no clock, randomness, environment,
network or file access happens here. Time comes from the workflow context, configuration
from the workflow input, and every side effect is an activity (`fte.activities`) whose
result is re-validated into a contract, so a replay sees typed data.

A failure, a rejection or a `cancel` event runs compensation, which deletes the run's
partial artifacts in reverse order.

- `run.py`: one execution's scope (scheduling agents and children, waiting with check-ins)
- `progress.py`: live progress, the workflow's custom status
- `approval.py`: the human approval gate
- `stages.py`: the stages and compensation
- `rounds.py`: v2's gap-filling rounds after the first pass, within the run's budget
  (v3 runs the same stages, with agents' inputs built from the run's artifacts; v4 with
  source finders that propose their queries and search in one activity; v5 with source
  finders that do all their work in one activity)
- `budget.py`: spend so far against the budget, and whether the next step fits
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dapr.ext.workflow as wf
import structlog

from fte.contracts import EndStatus, FinalizeResult, Outcome, RunConfig
from fte.coordinator import stages
from fte.coordinator.approval import approval_gate
from fte.coordinator.rounds import pipeline_v2
from fte.coordinator.run import Flow, Run, RunEnded

log = structlog.get_logger(__name__)


def _failure_reason(exc: wf.TaskFailedError) -> str:
    details = getattr(exc, "details", None)
    message = getattr(details, "message", None) or str(exc)
    return str(message)


def pipeline_v1(run: Run) -> Flow:
    """The stages of coordinator v1; returns the finalize stage's result."""
    plan = yield from stages.plan(run)
    if run.cfg.require_approval:
        plan = yield from approval_gate(run, plan)
    sources = yield from stages.find_sources(run, plan)
    analysis = yield from stages.analyse(run, plan, sources)
    checked = yield from stages.fact_check(run, analysis, sources)
    draft = yield from stages.write(run, plan, checked, sources)
    return (yield from stages.finalize(run, plan, sources, checked.checked, draft))


def conduct(
    ctx: wf.DaprWorkflowContext, raw: dict[str, Any], pipeline: Callable[[Run], Flow]
) -> Flow:
    """Run `pipeline`'s stages; on rejection, cancel or failure, compensate and say so.

    Shared by every coordinator version, so a new version differs only in its stages.
    """
    run = Run(ctx, RunConfig.model_validate(raw))
    run.progress.publish()
    try:
        final: FinalizeResult = yield from pipeline(run)
    except (RunEnded, wf.TaskFailedError) as exc:
        status: EndStatus = "failed"
        if isinstance(exc, RunEnded):
            status, reason = exc.status, exc.reason
        else:
            reason = f"{run.progress.stage}: {_failure_reason(exc)}"
        failed_stage = run.progress.stage
        yield from stages.compensate(run)
        run.progress.state.reason = reason
        run.progress.enter(status)
        if not ctx.is_replaying:
            log.warning("run ended", task_id=run.task_id, status=status, stage=failed_stage)
        yield run.notice("outcome", f"{status}: {reason}", status=status)
        if status == "failed":
            # A failed run is FAILED in Dapr too, so dashboards and `dapr workflow` agree.
            where = "" if reason.startswith(f"{failed_stage}:") else f"{failed_stage}: "
            raise RuntimeError(f"research run failed at {where}{reason}") from None
        return Outcome(
            task_id=run.task_id, status=status, reason=reason, usage=run.progress.state.usage
        ).model_dump(mode="json")

    # A budget that ended the research early is a completed run that says so, not a failure.
    run.progress.state.reason = run.budget_note
    run.progress.enter("completed")
    return Outcome(
        task_id=run.task_id,
        status="completed",
        reason=run.budget_note,
        report_key=final.report_key,
        usage=run.progress.state.usage,
        integrity=final.integrity,
        spend=run.progress.state.spend,
    ).model_dump(mode="json")


def research_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Coordinator v1."""
    return (yield from conduct(ctx, raw, pipeline_v1))


def research_workflow_v2(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Coordinator v2: v1's pass, then gap-filling rounds (`depth`), within the budget."""
    return (yield from conduct(ctx, raw, pipeline_v2))


def pipeline_v3(run: Run) -> Flow:
    """v2's stages with claims and the draft kept out of history too (`Run.lean_claims`),
    and one progress check-in timer for all waits until it fires (`Run.shared_checkin`)."""
    run.lean_claims = True
    run.shared_checkin = True
    return (yield from pipeline_v2(run))


def research_workflow_v3(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Coordinator v3: v2, with agents building their inputs from the run's artifacts."""
    return (yield from conduct(ctx, raw, pipeline_v3))


def pipeline_v4(run: Run) -> Flow:
    """v3's stages with source finders that propose their queries and search in one
    activity (`Run.proposing`)."""
    run.proposing = True
    return (yield from pipeline_v3(run))


def research_workflow_v4(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Coordinator v4: v3, with one activity fewer per sub-question."""
    return (yield from conduct(ctx, raw, pipeline_v4))


def pipeline_v5(run: Run) -> Flow:
    """v4's stages with source finders that do all their work in one activity
    (`Run.single_activity_finders`)."""
    run.single_activity_finders = True
    return (yield from pipeline_v4(run))


def research_workflow_v5(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Coordinator v5: v4, with one activity per sub-question."""
    return (yield from conduct(ctx, raw, pipeline_v5))


CoordinatorFn = Callable[[wf.DaprWorkflowContext, Any], Flow]

# Every version of the coordinator that a run in flight may have started on. The engine
# records a run's version in its history and replays it on that version only, so a
# changed coordinator is added here as a new version, made LATEST, and the old one is
# removed only once no run that started on it is unfinished. (A worker without a run's
# version leaves that run STALLED until one with it connects; nothing is lost.)
VERSIONS: Mapping[str, CoordinatorFn] = {
    "v1": research_workflow,
    "v2": research_workflow_v2,
    "v3": research_workflow_v3,
    "v4": research_workflow_v4,
    "v5": research_workflow_v5,
}
LATEST = "v5"
