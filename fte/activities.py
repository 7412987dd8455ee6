"""Activities: every side effect of a research run (LLM calls, search, state, pub/sub).

Activities take and return plain JSON; the pydantic contracts in `fte.contracts`
validate both sides. Their dependencies (LLM client, artifact store, notifier,
corpus loader) are process-level resources configured once by the worker with
`configure()`, so no secret ever passes through workflow input or history.

Retry ownership: an activity attempt lets `LLMClient` retry HTTP-level transient
failures a few times; anything still failing is raised and the workflow's
`RetryPolicy` decides whether to run the attempt again. Permanent failures are
raised as `NonRetryableError`, which the engine never retries.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import dapr.ext.workflow as wf
import structlog
from dapr.clients import DaprClient
from dapr.ext.workflow._durabletask.task import NonRetryableError

from fte import artifacts
from fte.agents import analyst, fact_checker, planner, source_finder, writer
from fte.artifacts import ArtifactStore
from fte.citations import DraftSection, verify_citations
from fte.contracts import (
    AnalyseInput,
    AnalysisResult,
    CancelChildrenInput,
    CheckedClaim,
    Claim,
    DeleteInput,
    DraftResult,
    FactCheckInput,
    FactCheckResult,
    FinalizeInput,
    FinalizeResult,
    JudgeInput,
    Notice,
    PlanInput,
    PlanResult,
    QueriesInput,
    QueriesResult,
    SearchInput,
    SearchResult,
    SourceFinderResult,
    StoreInput,
    SubQuestion,
    TokenUsage,
    WriteInput,
)
from fte.errors import FteError, LLMTransientError
from fte.llm import LLMClient
from fte.report import Report, number_sources, render_markdown
from fte.sources import LocalCorpus, SourceProvider, corpus_fingerprint

log = structlog.get_logger(__name__)

PUBSUB_NAME = "pubsub"
NOTICE_TOPIC = "fte.notices"


class Notifier:
    """Publishes notices to a Dapr pub/sub topic (for chat bots, e-mail bridges) and logs them."""

    def __init__(self, client: DaprClient, *, pubsub: str = PUBSUB_NAME) -> None:
        self._client = client
        self._pubsub = pubsub

    def send(self, notice: Notice) -> None:
        log.info("notice", task_id=notice.task_id, kind=notice.kind, message=notice.message)
        self._client.publish_event(
            self._pubsub,
            NOTICE_TOPIC,
            notice.model_dump_json(),
            data_content_type="application/json",
        )


@dataclass
class ActivityDeps:
    llm: LLMClient
    store: ArtifactStore
    notifier: Notifier
    corpus: Callable[[str], SourceProvider]
    workflow_client: wf.DaprWorkflowClient | None = None
    llm_endpoint: str = ""


_deps: ActivityDeps | None = None


def configure(deps: ActivityDeps) -> None:
    global _deps
    _deps = deps


def deps() -> ActivityDeps:
    if _deps is None:
        raise RuntimeError("activities used before fte.activities.configure() was called")
    return _deps


_corpus_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _load_corpus(path: str, fingerprint: str) -> LocalCorpus:
    return LocalCorpus.load(Path(path))


def cached_corpus(corpus_dir: str) -> SourceProvider:
    """Load a corpus once per process; a changed file changes the fingerprint and reloads it."""
    root = Path(corpus_dir).resolve()
    with _corpus_lock:
        return _load_corpus(str(root), corpus_fingerprint(root))


P = ParamSpec("P")
R = TypeVar("R")


def _permanent_failures_are_final(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn permanent errors into the engine's NonRetryableError so no retry storm follows.

    Of our own errors only an exhausted transient LLM failure can succeed on a later
    attempt; a bad key, a bad request, a bad corpus or a bad prompt cannot.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except LLMTransientError:
            raise
        except FteError as exc:
            raise NonRetryableError(f"{type(exc).__name__}: {exc}") from exc

    return wrapper


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _log_attempt(ctx: wf.WorkflowActivityContext, activity: str, task_id: str) -> None:
    log.info(
        "activity.start",
        activity=activity,
        task_id=task_id,
        workflow_id=ctx.workflow_id,
        task_number=ctx.task_id,
    )


# -- planner ---------------------------------------------------------------


@_permanent_failures_are_final
def plan_research(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = PlanInput.model_validate(raw)
    _log_attempt(ctx, "plan_research", inp.task_id)
    d = deps()
    result = planner.plan(
        d.llm, model=inp.model, query=inp.query, max_sub_questions=inp.max_sub_questions
    )
    sub_questions = [
        SubQuestion(id=f"q{i}", text=text.strip())
        for i, text in enumerate(result.output.sub_questions[: inp.max_sub_questions], 1)
    ]
    plan = PlanResult(
        sub_questions=sub_questions, rationale=result.output.rationale, usage=result.usage
    )
    d.store.put(inp.task_id, artifacts.PLAN, plan.model_dump(mode="json"))
    return plan.model_dump(mode="json")


def store_artifact(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> str:
    inp = StoreInput.model_validate(raw)
    return deps().store.put(inp.task_id, inp.name, inp.document)


# -- source finder -----------------------------------------------------------


@_permanent_failures_are_final
def propose_queries(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = QueriesInput.model_validate(raw)
    _log_attempt(ctx, "propose_queries", inp.task_id)
    result = source_finder.propose_queries(
        deps().llm, model=inp.model, sub_question=inp.sub_question.text
    )
    # The sub-question itself is always searched too: a poor query list cannot hide it.
    queries = list(dict.fromkeys([inp.sub_question.text, *result.output.queries]))
    return QueriesResult(queries=queries, usage=result.usage).model_dump(mode="json")


@_permanent_failures_are_final
def search_sources(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = SearchInput.model_validate(raw)
    corpus = deps().corpus(inp.corpus_dir)
    best: dict[str, Any] = {}
    for query in inp.queries:
        for passage in corpus.search(query, limit=inp.limit):
            seen = best.get(passage.passage_id)
            if seen is None or passage.score > seen.score:
                best[passage.passage_id] = passage
    ranked = sorted(best.values(), key=lambda p: (-p.score, p.passage_id))[: inp.limit]
    return SearchResult(passages=ranked, retrieved_at=_now()).model_dump(mode="json")


@_permanent_failures_are_final
def judge_relevance(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = JudgeInput.model_validate(raw)
    _log_attempt(ctx, "judge_relevance", inp.task_id)
    d = deps()
    usage = TokenUsage()
    kept = []
    if inp.candidates:
        result = source_finder.judge_relevance(
            d.llm, model=inp.model, sub_question=inp.sub_question.text, candidates=inp.candidates
        )
        usage = result.usage
        # Only IDs we actually offered count: the model cannot invent a source here.
        chosen = set(result.output.relevant_passage_ids)
        kept = [p for p in inp.candidates if p.passage_id in chosen][: inp.keep]
    found = SourceFinderResult(
        sub_question_id=inp.sub_question.id,
        passages=kept,
        retrieved_at=inp.retrieved_at,
        usage=usage,
    )
    d.store.put(
        inp.task_id, artifacts.sources_for(inp.sub_question.id), found.model_dump(mode="json")
    )
    return found.model_dump(mode="json")


# -- analyst ---------------------------------------------------------------


@_permanent_failures_are_final
def analyse(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = AnalyseInput.model_validate(raw)
    _log_attempt(ctx, "analyse", inp.task_id)
    d = deps()
    result = analyst.analyse(
        d.llm,
        model=inp.model,
        query=inp.query,
        sub_questions=inp.sub_questions,
        sources=inp.sources,
    )
    known = {s.id for s in inp.sources}
    claims: list[Claim] = []
    for extracted in result.output.claims:
        cited = [s for s in dict.fromkeys(extracted.source_ids) if s in known]
        if not cited:
            # A claim that cites nothing retrieved cannot be fact-checked; drop it here.
            log.info("analyst claim dropped: cites no retrieved source", task_id=inp.task_id)
            continue
        claims.append(
            Claim(
                id=f"C{len(claims) + 1}",
                text=extracted.text.strip(),
                source_ids=cited,
                sub_question_id=extracted.sub_question_id,
            )
        )
    analysis = AnalysisResult(claims=claims, summary=result.output.summary, usage=result.usage)
    d.store.put(inp.task_id, artifacts.NOTES, analysis.model_dump(mode="json"))
    return analysis.model_dump(mode="json")


# -- fact-checker ------------------------------------------------------------


def _normalise(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


@_permanent_failures_are_final
def fact_check(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = FactCheckInput.model_validate(raw)
    _log_attempt(ctx, "fact_check", inp.task_id)
    d = deps()
    usage = TokenUsage()
    verdicts = {}
    if inp.claims:
        result = fact_checker.check(d.llm, model=inp.model, claims=inp.claims, sources=inp.sources)
        usage = result.usage
        verdicts = {v.claim_id: v for v in result.output.verdicts}
    texts = {s.id: _normalise(s.text) for s in inp.sources}
    checked: list[CheckedClaim] = []
    for claim in inp.claims:
        v = verdicts.get(claim.id)
        if v is None:
            checked.append(CheckedClaim(claim=claim, verdict="unsupported", evidence=""))
            continue
        verdict = v.verdict
        evidence_source = v.evidence_source_id if v.evidence_source_id in claim.source_ids else None
        if verdict == "supported":
            # "Supported" must rest on a quote that really is in one of the claim's
            # own sources; otherwise the model's judgement is not evidence.
            quote = _normalise(v.evidence)
            holders = [s for s in claim.source_ids if quote and quote in texts.get(s, "")]
            if not holders:
                verdict = "unsupported"
            else:
                evidence_source = evidence_source if evidence_source in holders else holders[0]
        checked.append(
            CheckedClaim(
                claim=claim,
                verdict=verdict,
                evidence=v.evidence,
                evidence_source_id=evidence_source,
            )
        )
    out = FactCheckResult(checked=checked, usage=usage)
    d.store.put(inp.task_id, artifacts.CLAIMS, out.model_dump(mode="json"))
    return out.model_dump(mode="json")


# -- writer ----------------------------------------------------------------


@_permanent_failures_are_final
def write_draft(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = WriteInput.model_validate(raw)
    _log_attempt(ctx, "write_draft", inp.task_id)
    d = deps()
    result = writer.write(
        d.llm,
        model=inp.model,
        query=inp.query,
        claims=inp.checked,
        sources=inp.sources,
        sub_questions=inp.sub_questions,
    )
    draft = result.output.model_dump(mode="json")
    d.store.put(inp.task_id, artifacts.DRAFT, draft)
    return DraftResult(draft=draft, usage=result.usage).model_dump(mode="json")


@_permanent_failures_are_final
def finalize_report(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = FinalizeInput.model_validate(raw)
    draft = writer.WriterOutput.model_validate(inp.draft)
    sections, integrity = verify_citations(
        [DraftSection.model_validate(s.model_dump()) for s in draft.sections],
        sources=inp.sources,
        checked=inp.checked,
        policy=inp.policy,
    )
    usage_total = TokenUsage()
    for usage in inp.usage_by_agent.values():
        usage_total += usage
    report = Report(
        task_id=inp.task_id,
        query=inp.query,
        title=draft.title,
        summary=draft.summary,
        sections=sections,
        sources=number_sources(sections, inp.sources),
        sub_questions=inp.sub_questions,
        plan_rationale=inp.plan_rationale,
        claims=inp.checked,
        integrity=integrity,
        usage_by_agent=inp.usage_by_agent,
        usage_total=usage_total,
        stage_seconds=inp.stage_seconds,
        models=inp.models,
        started_at=inp.started_at,
        finished_at=inp.finished_at,
        llm_endpoint=deps().llm_endpoint,
    )
    document = report.model_dump(mode="json")
    document["markdown"] = render_markdown(report)
    key = deps().store.put(inp.task_id, artifacts.REPORT, document)
    return FinalizeResult(report_key=key, integrity=integrity).model_dump(mode="json")


# -- notices, compensation, cancellation ---------------------------------------


def notify(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> None:
    deps().notifier.send(Notice.model_validate(raw))


def delete_artifacts(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> list[str]:
    inp = DeleteInput.model_validate(raw)
    deleted = deps().store.delete(inp.task_id, inp.names)
    log.info("compensation: artifacts deleted", task_id=inp.task_id, count=len(deleted))
    return deleted


def cancel_children(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> list[str]:
    """Terminate still-running child workflows so they write no artifact after compensation."""
    inp = CancelChildrenInput.model_validate(raw)
    client = deps().workflow_client
    if client is None:
        return []
    stopped = []
    for instance_id in inp.instance_ids:
        state = client.get_workflow_state(instance_id, fetch_payloads=False)
        if state is not None and state.runtime_status in (
            wf.WorkflowStatus.RUNNING,
            wf.WorkflowStatus.PENDING,
            wf.WorkflowStatus.SUSPENDED,
        ):
            client.terminate_workflow(instance_id)
            stopped.append(instance_id)
    return stopped


# Activity names are part of the durable history: never rename a registered one.
PLAN_RESEARCH = "fte.plan_research"
STORE_ARTIFACT = "fte.store_artifact"
PROPOSE_QUERIES = "fte.propose_queries"
SEARCH_SOURCES = "fte.search_sources"
JUDGE_RELEVANCE = "fte.judge_relevance"
ANALYSE = "fte.analyse"
FACT_CHECK = "fte.fact_check"
WRITE_DRAFT = "fte.write_draft"
FINALIZE_REPORT = "fte.finalize_report"
NOTIFY = "fte.notify"
DELETE_ARTIFACTS = "fte.delete_artifacts"
CANCEL_CHILDREN = "fte.cancel_children"

ACTIVITIES: dict[str, Callable[..., Any]] = {
    PLAN_RESEARCH: plan_research,
    STORE_ARTIFACT: store_artifact,
    PROPOSE_QUERIES: propose_queries,
    SEARCH_SOURCES: search_sources,
    JUDGE_RELEVANCE: judge_relevance,
    ANALYSE: analyse,
    FACT_CHECK: fact_check,
    WRITE_DRAFT: write_draft,
    FINALIZE_REPORT: finalize_report,
    NOTIFY: notify,
    DELETE_ARTIFACTS: delete_artifacts,
    CANCEL_CHILDREN: cancel_children,
}
