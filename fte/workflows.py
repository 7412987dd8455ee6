"""Workflows: orchestration only, deterministic and replay-safe.

No clock, randomness, environment, network or file access happens here: time
comes from `ctx.current_utc_datetime`, configuration from the workflow input,
and every side effect is an activity (see `fte.activities`). Activity results
are re-validated into pydantic contracts, so a replay sees typed data.

The coordinator `research` plans, optionally waits for a person to approve the
plan, fans out one source-finder child workflow per sub-question, then runs the
analyst, fact-checker and writer child workflows and finalizes a report whose
citations are checked in code. A failure, a rejection or a `cancel` event runs
compensation, which deletes the run's partial artifacts in reverse order.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, datetime, timedelta
from typing import Any

import dapr.ext.workflow as wf
import structlog
from pydantic import ValidationError

from fte import activities as act
from fte import artifacts
from fte.contracts import (
    TERMINAL_STAGES,
    AnalyseInput,
    AnalysisResult,
    ApprovalDecision,
    CancelChildrenInput,
    CheckedClaim,
    DeleteInput,
    DraftResult,
    EndStatus,
    FactCheckInput,
    FactCheckResult,
    FinalizeInput,
    FinalizeResult,
    JudgeInput,
    Notice,
    Outcome,
    PlanInput,
    PlanResult,
    Progress,
    QueriesInput,
    QueriesResult,
    RunConfig,
    SearchInput,
    SearchResult,
    Source,
    SourceFinderResult,
    Stage,
    StoreInput,
    SubQuestion,
    SubQuestionProgress,
    TokenUsage,
    WriteInput,
)
from fte.worker import Registry

log = structlog.get_logger(__name__)

# Workflow names are part of the durable history: never rename a registered one.
COORDINATOR = "research"
SOURCE_FINDER = "research.source_finder"
ANALYST = "research.analyst"
FACT_CHECKER = "research.fact_checker"
WRITER = "research.writer"

APPROVAL_EVENT = "approval"
CANCEL_EVENT = "cancel"

# LLM calls: the client already retried HTTP-level blips inside the attempt, so
# an attempt that still fails waits a few seconds before the next one.
LLM_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    max_number_of_attempts=4,
    max_retry_interval=timedelta(seconds=30),
    retry_timeout=timedelta(minutes=10),
)
# Local I/O (state store, corpus search, pub/sub): fast, short retries.
IO_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    max_number_of_attempts=5,
    max_retry_interval=timedelta(seconds=10),
    retry_timeout=timedelta(minutes=2),
)
# Compensation must finish even through a sidecar hiccup, so it tries longer.
COMPENSATION_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    max_number_of_attempts=8,
    max_retry_interval=timedelta(seconds=30),
    retry_timeout=timedelta(minutes=10),
)

Flow = Generator[Any, Any, Any]


def _iso(moment: datetime) -> str:
    # The engine's clock is UTC but naive; say so, so readers can subtract safely.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


def child_id(task_id: str, role: str) -> str:
    return f"{task_id}.{role}"


class RunEnded(Exception):
    """Raised inside the coordinator to stop the pipeline: rejected, cancelled or failed."""

    def __init__(self, status: EndStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# -- specialist child workflows -------------------------------------------------


def source_finder_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Propose search queries (LLM), search the corpus, keep the relevant passages (LLM)."""
    task_id = raw["task_id"]
    sub_question = SubQuestion.model_validate(raw["sub_question"])
    model = raw["model"]
    queries = QueriesResult.model_validate(
        (
            yield ctx.call_activity(
                act.PROPOSE_QUERIES,
                input=QueriesInput(task_id=task_id, sub_question=sub_question, model=model),
                retry_policy=LLM_RETRY,
            )
        )
    )
    found = SearchResult.model_validate(
        (
            yield ctx.call_activity(
                act.SEARCH_SOURCES,
                input=SearchInput(
                    corpus_dir=raw["corpus_dir"],
                    queries=queries.queries,
                    limit=int(raw["candidates"]),
                ),
                retry_policy=IO_RETRY,
            )
        )
    )
    judged = SourceFinderResult.model_validate(
        (
            yield ctx.call_activity(
                act.JUDGE_RELEVANCE,
                input=JudgeInput(
                    task_id=task_id,
                    sub_question=sub_question,
                    candidates=found.passages,
                    retrieved_at=found.retrieved_at,
                    keep=int(raw["keep"]),
                    model=model,
                ),
                retry_policy=LLM_RETRY,
            )
        )
    )
    judged.usage = queries.usage + judged.usage
    return judged.model_dump(mode="json")


def analyst_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    inp = AnalyseInput.model_validate(raw)
    result = yield ctx.call_activity(act.ANALYSE, input=inp, retry_policy=LLM_RETRY)
    return AnalysisResult.model_validate(result).model_dump(mode="json")


def fact_checker_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    inp = FactCheckInput.model_validate(raw)
    result = yield ctx.call_activity(act.FACT_CHECK, input=inp, retry_policy=LLM_RETRY)
    return FactCheckResult.model_validate(result).model_dump(mode="json")


def writer_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    inp = WriteInput.model_validate(raw)
    result = yield ctx.call_activity(act.WRITE_DRAFT, input=inp, retry_policy=LLM_RETRY)
    return DraftResult.model_validate(result).model_dump(mode="json")


# -- the coordinator -----------------------------------------------------------


class _Run:
    """Per-execution state of the coordinator; rebuilt identically on every replay."""

    def __init__(self, ctx: wf.DaprWorkflowContext, cfg: RunConfig) -> None:
        self.ctx = ctx
        self.cfg = cfg
        self.task_id = ctx.instance_id
        self.started = ctx.current_utc_datetime
        self.progress = Progress(
            task_id=self.task_id,
            query=cfg.query,
            stage="planning",
            started_at=_iso(self.started),
            updated_at=_iso(self.started),
            models=cfg.models,
        )
        self.stage_seconds: dict[str, float] = {}
        self.sub_question_ids: list[str] = []
        self.children: list[str] = []
        self.cancel = ctx.wait_for_external_event(CANCEL_EVENT)
        self._stage_started = self.started

    # progress ------------------------------------------------------------------

    def publish(self) -> None:
        self.progress.updated_at = _iso(self.ctx.current_utc_datetime)
        self.ctx.set_custom_status(self.progress.model_dump_json())

    def enter(self, stage: Stage) -> None:
        now = self.ctx.current_utc_datetime
        previous = self.progress.stage
        if previous not in TERMINAL_STAGES:
            elapsed = (now - self._stage_started).total_seconds()
            self.stage_seconds[previous] = self.stage_seconds.get(previous, 0.0) + elapsed
        self._stage_started = now
        self.progress.stage = stage
        if not self.ctx.is_replaying:
            log.info("stage", task_id=self.task_id, stage=stage)
        self.publish()

    def add_usage(self, agent: str, usage: TokenUsage) -> None:
        by_agent = self.progress.usage_by_agent
        by_agent[agent] = by_agent.get(agent, TokenUsage()) + usage
        self.progress.usage = self.progress.usage + usage

    def notice(self, kind: str, message: str, **data: Any) -> Any:
        return self.ctx.call_activity(
            act.NOTIFY,
            input=Notice.model_validate(
                {"task_id": self.task_id, "kind": kind, "message": message, "data": data}
            ),
            retry_policy=IO_RETRY,
        )

    # waiting -------------------------------------------------------------------

    def wait(self, task: Any) -> Flow:
        """Wait for `task`, sending progress check-ins on a timer and honouring `cancel`."""
        interval = timedelta(seconds=self.cfg.progress_checkin_interval_s)
        while True:
            checkin = self.ctx.create_timer(interval)
            winner = yield wf.when_any([task, self.cancel, checkin])
            if winner is task:
                return task.get_result()
            if winner is self.cancel:
                raise RunEnded("cancelled", _cancel_reason(self.cancel.get_result()))
            self.progress.checkins += 1
            self.publish()
            yield self.notice(
                "progress_checkin",
                f"{self.progress.stage}: still working",
                stage=self.progress.stage,
                tokens=self.progress.usage.total_tokens,
            )

    def child(self, workflow: str, role: str, payload: Any) -> Any:
        instance_id = child_id(self.task_id, role)
        self.children.append(instance_id)
        return self.ctx.call_child_workflow(workflow, input=payload, instance_id=instance_id)

    # stages ----------------------------------------------------------------------

    def plan(self) -> Flow:
        self.enter("planning")
        raw = yield from self.wait(
            self.ctx.call_activity(
                act.PLAN_RESEARCH,
                input=PlanInput(
                    task_id=self.task_id,
                    query=self.cfg.query,
                    model=self.cfg.models.planner,
                    max_sub_questions=self.cfg.max_sub_questions,
                ),
                retry_policy=LLM_RETRY,
            )
        )
        plan = PlanResult.model_validate(raw)
        self.add_usage("planner", plan.usage)
        self.set_sub_questions(plan.sub_questions)
        return plan

    def set_sub_questions(self, sub_questions: list[SubQuestion]) -> None:
        self.sub_question_ids = [q.id for q in sub_questions]
        self.progress.sub_questions = [
            SubQuestionProgress(id=q.id, text=q.text) for q in sub_questions
        ]
        self.publish()

    def approve(self, plan: PlanResult) -> Flow:
        self.enter("awaiting_approval")
        cfg = self.cfg
        deadline = self.ctx.current_utc_datetime + timedelta(seconds=cfg.approval_timeout_s)
        yield self.notice(
            "approval_request",
            f"Approve the research plan: fte approve {self.task_id}  |  "
            f"fte reject {self.task_id} --reason ...",
            sub_questions=[q.text for q in plan.sub_questions],
            deadline=_iso(deadline),
        )
        event = self.ctx.wait_for_external_event(APPROVAL_EVENT)
        while True:
            now = self.ctx.current_utc_datetime
            reminder_at = min(now + timedelta(seconds=cfg.approval_reminder_interval_s), deadline)
            timer = self.ctx.create_timer(reminder_at)
            winner = yield wf.when_any([event, self.cancel, timer])
            if winner is self.cancel:
                raise RunEnded("cancelled", _cancel_reason(self.cancel.get_result()))
            if winner is timer:
                if self.ctx.current_utc_datetime >= deadline:
                    if cfg.auto_approve_on_timeout:
                        yield self.notice("approval_reminder", "No answer: plan auto-approved")
                        return plan
                    raise RunEnded(
                        "rejected",
                        f"no approval within {cfg.approval_timeout_s:g}s "
                        f"(deadline {_iso(deadline)})",
                    )
                self.progress.checkins += 1
                self.publish()
                yield self.notice(
                    "approval_reminder",
                    f"Still waiting for approval of {self.task_id} (deadline {_iso(deadline)})",
                )
                continue
            try:
                decision = ApprovalDecision.model_validate(event.get_result())
                edited = _edited_sub_questions(decision)
            except ValidationError as exc:
                # A malformed answer must not end the run: say so and keep waiting.
                yield self.notice("approval_reminder", f"Ignored an invalid approval: {exc}")
                event = self.ctx.wait_for_external_event(APPROVAL_EVENT)
                continue
            if not decision.approved:
                raise RunEnded("rejected", decision.comment or "plan rejected by reviewer")
            if edited is None:
                return plan
            plan = PlanResult(
                sub_questions=edited,
                rationale=f"{plan.rationale}\n\nEdited by reviewer: {decision.comment}".strip(),
                usage=plan.usage,
            )
            self.set_sub_questions(edited)
            yield self.ctx.call_activity(
                act.STORE_ARTIFACT,
                input=StoreInput(
                    task_id=self.task_id, name=artifacts.PLAN, document=plan.model_dump(mode="json")
                ),
                retry_policy=IO_RETRY,
            )
            return plan

    def find_sources(self, plan: PlanResult) -> Flow:
        self.enter("finding_sources")
        for item in self.progress.sub_questions:
            item.state = "searching"
        self.publish()
        tasks = [
            self.child(
                SOURCE_FINDER,
                f"sources.{q.id}",
                {
                    "task_id": self.task_id,
                    "sub_question": q.model_dump(mode="json"),
                    "corpus_dir": self.cfg.corpus_dir,
                    "model": self.cfg.models.source_finder,
                    "keep": self.cfg.sources_per_question,
                    "candidates": self.cfg.search_candidates,
                },
            )
            for q in plan.sub_questions
        ]
        # Sub-questions report progress as each child finishes, not only at the end.
        pending = list(tasks)
        while pending:
            done = yield from self.wait(wf.when_any(pending))
            pending.remove(done)
            result = SourceFinderResult.model_validate(done.get_result())
            item = next(i for i in self.progress.sub_questions if i.id == result.sub_question_id)
            item.state = "done"
            item.sources = len(result.passages)
            self.progress.sources_found += len(result.passages)
            self.add_usage("source_finder", result.usage)
            self.publish()

        sources: list[Source] = []
        seen: set[str] = set()
        for task in tasks:  # sub-question order, so source IDs do not depend on timing
            result = SourceFinderResult.model_validate(task.get_result())
            for passage in result.passages:
                if passage.passage_id in seen:
                    continue
                seen.add(passage.passage_id)
                sources.append(
                    Source(
                        id=f"S{len(sources) + 1}",
                        passage_id=passage.passage_id,
                        title=passage.title,
                        location=passage.location,
                        text=passage.text,
                        retrieved_at=result.retrieved_at,
                        sub_question_id=result.sub_question_id,
                    )
                )
        self.progress.sources_found = len(sources)
        self.publish()
        if not sources:
            raise RunEnded(
                "failed",
                f"no relevant source found in {self.cfg.corpus_dir} for any sub-question",
            )
        yield self.ctx.call_activity(
            act.STORE_ARTIFACT,
            input=StoreInput(
                task_id=self.task_id,
                name=artifacts.SOURCES,
                document={"sources": [s.model_dump(mode="json") for s in sources]},
            ),
            retry_policy=IO_RETRY,
        )
        return sources

    def analyse(self, plan: PlanResult, sources: list[Source]) -> Flow:
        self.enter("analysing")
        raw = yield from self.wait(
            self.child(
                ANALYST,
                "analyst",
                AnalyseInput(
                    task_id=self.task_id,
                    query=self.cfg.query,
                    sub_questions=plan.sub_questions,
                    sources=sources,
                    model=self.cfg.models.analyst,
                ).model_dump(mode="json"),
            )
        )
        analysis = AnalysisResult.model_validate(raw)
        self.add_usage("analyst", analysis.usage)
        self.progress.claims = len(analysis.claims)
        self.publish()
        if not analysis.claims:
            raise RunEnded("failed", "the analyst extracted no claim backed by a retrieved source")
        return analysis

    def fact_check(self, analysis: AnalysisResult, sources: list[Source]) -> Flow:
        self.enter("fact_checking")
        raw = yield from self.wait(
            self.child(
                FACT_CHECKER,
                "fact_checker",
                FactCheckInput(
                    task_id=self.task_id,
                    claims=analysis.claims,
                    sources=sources,
                    model=self.cfg.models.fact_checker,
                ).model_dump(mode="json"),
            )
        )
        checked = FactCheckResult.model_validate(raw)
        self.add_usage("fact_checker", checked.usage)
        if not any(c.verdict == "supported" for c in checked.checked):
            raise RunEnded("failed", "no claim was supported by its cited sources")
        return checked

    def write(self, plan: PlanResult, checked: FactCheckResult, sources: list[Source]) -> Flow:
        self.enter("writing")
        supported = [c for c in checked.checked if c.verdict == "supported"]
        cited = {s for c in supported for s in c.claim.source_ids}
        raw = yield from self.wait(
            self.child(
                WRITER,
                "writer",
                WriteInput(
                    task_id=self.task_id,
                    query=self.cfg.query,
                    checked=supported,
                    sources=[s for s in sources if s.id in cited],
                    model=self.cfg.models.writer,
                    sub_questions=plan.sub_questions,
                ).model_dump(mode="json"),
            )
        )
        draft = DraftResult.model_validate(raw)
        self.add_usage("writer", draft.usage)
        return draft

    def finalize(
        self,
        plan: PlanResult,
        sources: list[Source],
        checked: list[CheckedClaim],
        draft: DraftResult,
    ) -> Flow:
        self.enter("finalizing")
        raw = yield from self.wait(
            self.ctx.call_activity(
                act.FINALIZE_REPORT,
                input=FinalizeInput(
                    task_id=self.task_id,
                    query=self.cfg.query,
                    draft=draft.draft,
                    sources=sources,
                    checked=checked,
                    sub_questions=plan.sub_questions,
                    plan_rationale=plan.rationale,
                    policy=self.cfg.citation_policy,
                    usage_by_agent=self.progress.usage_by_agent,
                    stage_seconds=self.stage_seconds,
                    models=self.cfg.models,
                    started_at=_iso(self.started),
                    finished_at=_iso(self.ctx.current_utc_datetime),
                ),
                retry_policy=IO_RETRY,
            )
        )
        return FinalizeResult.model_validate(raw)

    def compensate(self) -> Flow:
        """Stop running children, then delete every artifact this run may have written."""
        self.enter("compensating")
        if self.children:
            yield self.ctx.call_activity(
                act.CANCEL_CHILDREN,
                input=CancelChildrenInput(instance_ids=self.children),
                retry_policy=COMPENSATION_RETRY,
            )
        for stage in reversed(artifacts.run_artifact_stages(self.sub_question_ids)):
            yield self.ctx.call_activity(
                act.DELETE_ARTIFACTS,
                input=DeleteInput(task_id=self.task_id, names=stage),
                retry_policy=COMPENSATION_RETRY,
            )


def _cancel_reason(payload: Any) -> str:
    if isinstance(payload, dict) and payload.get("reason"):
        return f"cancelled: {payload['reason']}"
    return "cancelled by user"


def _edited_sub_questions(decision: ApprovalDecision) -> list[SubQuestion] | None:
    if decision.sub_questions is None:
        return None
    return [SubQuestion(id=f"q{i}", text=t) for i, t in enumerate(decision.sub_questions, 1)]


def _failure_reason(exc: wf.TaskFailedError) -> str:
    details = getattr(exc, "details", None)
    message = getattr(details, "message", None) or str(exc)
    return str(message)


def research_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    cfg = RunConfig.model_validate(raw)
    run = _Run(ctx, cfg)
    run.publish()
    try:
        plan = yield from run.plan()
        if cfg.require_approval:
            plan = yield from run.approve(plan)
        sources = yield from run.find_sources(plan)
        analysis = yield from run.analyse(plan, sources)
        checked = yield from run.fact_check(analysis, sources)
        draft = yield from run.write(plan, checked, sources)
        final = yield from run.finalize(plan, sources, checked.checked, draft)
    except (RunEnded, wf.TaskFailedError) as exc:
        status: EndStatus = "failed"
        if isinstance(exc, RunEnded):
            status, reason = exc.status, exc.reason
        else:
            reason = f"{run.progress.stage}: {_failure_reason(exc)}"
        failed_stage = run.progress.stage
        yield from run.compensate()
        run.progress.reason = reason
        run.enter(status)
        if not ctx.is_replaying:
            log.warning("run ended", task_id=run.task_id, status=status, stage=failed_stage)
        yield run.notice("outcome", f"{status}: {reason}", status=status)
        if status == "failed":
            # A failed run is FAILED in Dapr too, so dashboards and `dapr workflow` agree.
            raise RuntimeError(f"research run failed at {failed_stage}: {reason}") from None
        return Outcome(
            task_id=run.task_id, status=status, reason=reason, usage=run.progress.usage
        ).model_dump(mode="json")

    run.enter("completed")
    return Outcome(
        task_id=run.task_id,
        status="completed",
        report_key=final.report_key,
        usage=run.progress.usage,
        integrity=final.integrity,
    ).model_dump(mode="json")


WORKFLOWS: dict[str, Any] = {
    COORDINATOR: research_workflow,
    SOURCE_FINDER: source_finder_workflow,
    ANALYST: analyst_workflow,
    FACT_CHECKER: fact_checker_workflow,
    WRITER: writer_workflow,
}


def register(registry: Registry) -> None:
    for name, workflow in WORKFLOWS.items():
        registry.workflow(name, workflow)
    for name, activity in act.ACTIVITIES.items():
        registry.activity(name, activity)
