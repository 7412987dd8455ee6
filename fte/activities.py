"""Activities: every side effect of a research run (LLM calls, search, state, pub/sub).

Activities take and return plain JSON; the pydantic contracts in `fte.contracts`
validate both sides. Every agent runs through one activity factory, so an agent
needs no activity code of its own. Their dependencies (model, artifact store, notifier,
corpus loader) are process-level resources configured once by the worker with
`configure()`, so no secret ever passes through workflow input or history.

Retry ownership: an activity attempt lets `LLMClient` retry HTTP-level transient
failures a few times; anything still failing is raised and the workflow's
`RetryPolicy` decides whether to run the attempt again. Permanent failures are
raised as `NonRetryableError`, which the engine never retries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import dapr.ext.workflow as wf
import structlog
from dapr.clients import DaprClient
from dapr.ext.workflow._durabletask.task import NonRetryableError

from fte import artifacts, changes, names, stored_inputs, tracing
from fte.agents import AnyAgent, all_agents, source_finder
from fte.agents.source_finder import QUERIES, RELEVANCE, RelevanceInput
from fte.agents.writer import WriterOutput
from fte.artifacts import ArtifactStore, answer_key
from fte.changes import Changes
from fte.citations import DraftSection, verify_citations
from fte.contracts import (
    AgentReply,
    AgentTask,
    CancelChildrenInput,
    CandidatesFound,
    CandidatesInput,
    CandidatesProposed,
    DeleteInput,
    FinalizeInput,
    FinalizeResult,
    FindSourcesInput,
    Gathered,
    GatherInput,
    JudgeInput,
    ModelEndpoint,
    Notice,
    ProposeAndSearchInput,
    SearchInput,
    SearchResult,
    SourceFinderResult,
    SourcesKept,
    StoreInput,
    SubQuestion,
    TokenUsage,
)
from fte.errors import FteError, LLMTransientError
from fte.llm import ModelRouter
from fte.report import RefusedPage, Report, number_sources, render_markdown
from fte.sources import SourceProvider

log = structlog.get_logger(__name__)

PUBSUB_NAME = "pubsub"
NOTICE_TOPIC = "fte.notices"


class Notifier:
    """Publishes notices to a Dapr pub/sub topic (for chat bots, e-mail bridges) and logs them."""

    def __init__(self, client: DaprClient, *, pubsub: str = PUBSUB_NAME) -> None:
        self._client = client
        self._pubsub = pubsub
        self._store = ArtifactStore(client)

    def send(self, notice: Notice) -> None:
        notice = self._with_link(notice)
        log.info("notice", task_id=notice.task_id, kind=notice.kind, message=notice.message)
        self._client.publish_event(
            self._pubsub,
            NOTICE_TOPIC,
            notice.model_dump_json(),
            data_content_type="application/json",
        )
        # Kept for the web console's run page; the topic has no memory of its own.
        record = notice.model_dump(mode="json")
        record["sent_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self._store.append_notice(notice.task_id, record)

    def _with_link(self, notice: Notice) -> Notice:
        """An approval request or reminder links to the run's page when `fte ui` serves one.

        Added here, not in the workflow: where the console listens is not the run's input
        and may change while the run waits.
        """
        if notice.kind not in ("approval_request", "approval_reminder"):
            return notice
        address = self._store.ui_address()
        if address is None:
            return notice
        link = f"{address}/runs/{quote(notice.task_id, safe='')}"
        return notice.model_copy(
            update={
                "message": f"{notice.message} Answer it at {link}",
                "data": {**notice.data, "link": link},
            }
        )


@dataclass
class ActivityDeps:
    models: ModelRouter
    store: ArtifactStore
    notifier: Notifier
    corpus: Callable[[str], SourceProvider]
    workflow_client: wf.DaprWorkflowClient | None = None


_deps: ActivityDeps | None = None


def configure(deps: ActivityDeps | None) -> ActivityDeps | None:
    """Set the process's activity dependencies; returns the ones they replace."""
    global _deps
    previous, _deps = _deps, deps
    return previous


def deps() -> ActivityDeps:
    if _deps is None:
        raise RuntimeError("activities used before fte.activities.configure() was called")
    return _deps


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


# -- agents ------------------------------------------------------------------


def _execution(ctx: wf.WorkflowActivityContext) -> str:
    """The engine's ID for this scheduling of the activity: the same on every delivery and
    retry of it, and new when a run is started again under a purged run's ID (the task
    number alone is the same then). Older sidecars send none; the task number stands in."""
    execution_id = ctx.get_inner_context().task_execution_id
    return execution_id or f"task-{ctx.task_id}"


def agent_activity(agent: AnyAgent) -> Callable[[wf.WorkflowActivityContext, Any], Any]:
    """The activity that runs `agent` once and stores its checked result if asked to."""

    @_permanent_failures_are_final
    def run_agent(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
        task = AgentTask.model_validate(raw)
        _log_attempt(ctx, agent.name, task.task_id)
        return _answer(ctx, agent, task, raw)

    return run_agent


def _answer(
    ctx: wf.WorkflowActivityContext, agent: AnyAgent, task: AgentTask, raw: dict[str, Any]
) -> dict[str, Any]:
    """`agent`'s reply to `task` (as sent: `raw`), from the model once per scheduling."""
    return _kept_or_asked(ctx, agent, task, raw)[0]


def _kept_or_asked(
    ctx: wf.WorkflowActivityContext, agent: AnyAgent, task: AgentTask, raw: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """`_answer`'s reply, and whether it was kept from an earlier delivery."""
    d = deps()
    # The engine delivers an activity at least once: again when its worker or sidecar
    # died after the model answered, or when the completion was lost on its way to a
    # workflow whose sidecar died. The answer is kept, so the model is asked once.
    memo = answer_key(ctx.workflow_id, _execution(ctx), raw)
    # The answer and the artifacts the input is built from in one round trip: on a first
    # delivery (nearly every one) both are needed.
    [kept], stored = stored_inputs.read_ahead(
        d.store, task.task_id, stored_inputs.needed(task), with_keys=[memo]
    )
    if kept is not None:
        log.info("agent.answer_reused", agent=agent.name, task_id=task.task_id)
        return dict(kept), True
    if task.sources_from is not None or task.from_store:
        task = task.model_copy(update={"inputs": stored_inputs.complete(stored, task)})
    return _ask_model(ctx, agent, task, memo), False


def _ask_model(
    ctx: wf.WorkflowActivityContext, agent: AnyAgent, task: AgentTask, memo: str
) -> dict[str, Any]:
    """Run `agent` on the model once, store its result if asked, and remember the answer."""
    reply, result = _model_reply(ctx, agent, task)
    stored = None if task.artifact is None else (task.task_id, task.artifact, result)
    deps().store.remember_answer(memo, reply, with_artifact=stored)
    return reply


def _model_reply(
    ctx: wf.WorkflowActivityContext, agent: AnyAgent, task: AgentTask
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run `agent` on the model once: its reply to the workflow, and its whole result."""
    model = deps().models.for_endpoint(task.endpoint, agent=agent.name, model=task.model)
    model = tracing.traced(
        model, task_id=task.task_id, workflow_id=ctx.workflow_id, activity_task=ctx.task_id
    )
    run = agent.run(model, task.model, agent.input_model.model_validate(task.inputs))
    result = run.result.model_dump(mode="json")
    # What no workflow reads of a result stays out of every history: only in its artifact.
    shown = {"full": result, "brief": agent.brief_of(result), "usage": {}}[task.reply]
    return AgentReply(result=shown, usage=run.usage).model_dump(mode="json"), result


def store_artifact(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> str:
    inp = StoreInput.model_validate(raw)
    return deps().store.put(inp.task_id, inp.name, inp.document)


@_permanent_failures_are_final
def search_sources(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = SearchInput.model_validate(raw)
    _log_attempt(ctx, "search_sources", inp.task_id)
    return _search(inp).model_dump(mode="json")


@_permanent_failures_are_final
def search_candidates(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Search, then store the candidates: their text never enters a workflow's history."""
    inp = CandidatesInput.model_validate(raw)
    _log_attempt(ctx, "search_candidates", inp.search.task_id)
    return _store_candidates(inp).model_dump(mode="json")


def _store_candidates(inp: CandidatesInput) -> CandidatesFound:
    found = _candidates(inp.search, inp.exclude_passage_ids, inp.keep_at_most)
    deps().store.put(inp.search.task_id, inp.name, found.model_dump(mode="json"))
    return CandidatesFound(count=len(found.passages), retrieved_at=found.retrieved_at)


def _candidates(search: SearchInput, exclude: list[str], keep_at_most: int) -> SearchResult:
    """The search's passages the run does not have yet (a gap round excludes its known
    ones, then keeps as many as the first pass had)."""
    found = _search(search)
    if exclude:
        known = set(exclude)
        fresh = [p for p in found.passages if p.passage_id not in known][:keep_at_most]
        found = found.model_copy(update={"passages": fresh})
    return found


@_permanent_failures_are_final
def propose_and_search(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Coordinator v4's source finder opening: propose queries for the sub-question (the
    model, asked once per scheduling), search them and store the candidates.

    One activity where v2 and v3 scheduled two: two engine hops and a workflow turn fewer
    per sub-question, when every lane of a fan-out wants the two cores at once.
    """
    inp = ProposeAndSearchInput.model_validate(raw)
    _log_attempt(ctx, QUERIES.name, inp.proposal.task_id)
    queries, usage = QUERIES.reply(_answer(ctx, QUERIES, inp.proposal, raw["proposal"]))
    search = inp.search.search.model_copy(update={"queries": queries.queries})
    found = _store_candidates(inp.search.model_copy(update={"search": search}))
    return CandidatesProposed(
        count=found.count, retrieved_at=found.retrieved_at, usage=usage
    ).model_dump(mode="json")


@_permanent_failures_are_final
def judge_candidates(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the stored candidates the relevance agent finds relevant, as `sources.<q>`.

    The agent is shown exactly what the classic source finder showed it (same passages,
    same order), so its request is the same. Returns how many it kept (`SourcesKept`).
    """
    inp = JudgeInput.model_validate(raw)
    _log_attempt(ctx, RELEVANCE.name, inp.task_id)
    d = deps()
    question = inp.sub_question
    stored = d.store.get(inp.task_id, inp.candidates)
    if stored is None:
        # A redelivery after this activity finished: its result is stored already.
        done = d.store.get(inp.task_id, artifacts.sources_for(question.id))
        if done is None:
            raise NonRetryableError(f"the search results {inp.candidates!r} are not stored")
        return _without_text(SourceFinderResult.model_validate(done))
    found = SearchResult.model_validate(stored).model_copy(
        update={"retrieved_at": inp.retrieved_at}
    )
    # The candidates' deletion in the same transaction as the result: a redelivery finds
    # either the candidates or the result.
    judgement = _Judgement(inp.task_id, question, inp.keep, inp.endpoint, inp.model)
    return judgement.keep_relevant(ctx, raw, found, inp.usage, deleting=[inp.candidates])


@dataclass
class _Judgement:
    """A source finder's relevance judgement: which found passages to keep, stored as the
    sub-question's sources. The agent is shown the passages as the classic source finder
    showed them (same passages, same order), so every version sends the same request."""

    task_id: str
    question: SubQuestion
    keep: int
    endpoint: ModelEndpoint
    model: str

    def keep_relevant(
        self,
        ctx: wf.WorkflowActivityContext,
        raw: dict[str, Any],
        found: SearchResult,
        usage: TokenUsage,
        *,
        deleting: Sequence[str] = (),
        may_be_kept: bool = True,
    ) -> dict[str, Any]:
        """Judge `found` (the activity's input `raw` keys the kept answer; `may_be_kept`:
        an earlier delivery may have one) and store the result, in one transaction with the
        answer and the deletion of the run's artifacts `deleting`. Returns `SourcesKept`."""
        d = deps()
        kept, answer = [], None
        if found.passages:  # nothing to judge, nothing to pay for
            task = AgentTask(
                task_id=self.task_id,
                agent=RELEVANCE.name,
                model=self.model,
                endpoint=self.endpoint,
                inputs=RelevanceInput.of(self.question.text, found.passages, self.keep).model_dump(
                    mode="json"
                ),
            )
            memo = answer_key(ctx.workflow_id, _execution(ctx), raw)
            reply = d.store.get_document(memo) if may_be_kept else None
            if reply is None:
                reply, _ = _model_reply(ctx, RELEVANCE, task)
                answer = (memo, reply)  # remembered with the kept passages, below
            judged, judge_usage = RELEVANCE.reply(reply)
            usage += judge_usage
            by_id = {p.passage_id: p for p in found.passages}
            # A kept answer from an earlier delivery names what that delivery's search found.
            kept = [by_id[pid] for pid in judged.relevant_passage_ids if pid in by_id]
        result = SourceFinderResult(
            sub_question_id=self.question.id,
            passages=kept,
            retrieved_at=found.retrieved_at,
            usage=usage,
        )
        d.store.put_with(
            self.task_id,
            artifacts.sources_for(self.question.id),
            result.model_dump(mode="json"),
            answer=answer,
            deleting=deleting,
        )
        return _without_text(result)


@_permanent_failures_are_final
def find_sources(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Coordinator v5's source finder, whole: propose queries for the sub-question (the
    model), search them, judge which passages are relevant (the model) and store those as
    `sources.<q>`. Returns how many it kept (`SourcesKept`).

    One activity where v4 scheduled two: two engine hops and a workflow turn fewer per
    sub-question, and the candidates never leave the activity (no write, read and delete
    of them). Each answer is kept the moment it comes, so a redelivered activity asks the
    model neither again: the proposal's on its own, the judgement's with the result.
    """
    inp = FindSourcesInput.model_validate(raw)
    task_id = inp.proposal.task_id
    _log_attempt(ctx, "source_finder", task_id)
    reply, reused = _kept_or_asked(ctx, QUERIES, inp.proposal, raw["proposal"])
    queries, usage = QUERIES.reply(reply)
    search = inp.search.model_copy(update={"queries": queries.queries})
    found = _candidates(search, inp.exclude_passage_ids, inp.keep_at_most)
    judgement = _Judgement(
        task_id, inp.sub_question, inp.keep, inp.proposal.endpoint, inp.proposal.model
    )
    # The judgement's answer is kept after the proposal's: when this delivery had to ask
    # for the proposal, no earlier one got as far as a judgement (one read saved).
    return judgement.keep_relevant(ctx, raw, found, usage, may_be_kept=reused)


def _without_text(result: SourceFinderResult) -> dict[str, Any]:
    """What the workflows see of the kept passages: how many; they are stored."""
    return SourcesKept(
        sub_question_id=result.sub_question_id, kept=len(result.passages), usage=result.usage
    ).model_dump(mode="json")


def gather_sources(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    """Number the new passages of source finders' artifacts as sources and store them; the
    workflow gets them without their text."""
    inp = GatherInput.model_validate(raw)
    store = deps().store
    results = []
    for name, document in zip(inp.found, store.get_many(inp.task_id, inp.found), strict=True):
        if document is None:
            raise NonRetryableError(f"the source finder's result {name!r} is not stored")
        results.append(SourceFinderResult.model_validate(document))
    sources = source_finder.number_new(
        results, known_passage_ids=set(inp.known_passage_ids), numbered_from=inp.numbered_from
    )
    if sources:
        store.put(inp.task_id, inp.name, {"sources": [s.model_dump(mode="json") for s in sources]})
    lean = [s.model_copy(update={"text": ""}) for s in sources]
    return Gathered(sources=lean).model_dump(mode="json")


def _search(inp: SearchInput) -> SearchResult:
    providers: list[SourceProvider] = []
    if "local" in inp.sources:
        providers.append(deps().corpus(inp.corpus_dir))
    web_source = None
    if "web" in inp.sources:
        from fte import web

        web_source = web.activity_web_source(deps().store)
        providers.append(web_source)
    rankings = []
    for provider in providers:
        best: dict[str, Any] = {}
        for query in inp.queries:
            for passage in provider.search(query, limit=inp.limit):
                seen = best.get(passage.passage_id)
                if seen is None or passage.score > seen.score:
                    best[passage.passage_id] = passage
        rankings.append(sorted(best.values(), key=lambda p: (-p.score, p.passage_id)))
    if len(rankings) == 1:
        ranked = rankings[0][: inp.limit]
    else:
        from fte.web import fuse

        # The corpus's and the web pages' BM25 scores are on different scales; ranks are not.
        ranked = fuse(rankings, limit=inp.limit)
    if web_source is not None and web_source.refusals and inp.task_id:
        deps().store.add_web_refusals(
            inp.task_id, {refusal.url: refusal.reason for refusal in web_source.refusals}
        )
    return SearchResult(passages=ranked, retrieved_at=_now())


@_permanent_failures_are_final
def finalize_report(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = FinalizeInput.model_validate(raw)
    # Every artifact the report is made from, and the refused web pages, in one round trip.
    names = [
        *(inp.sources_from or []),
        *(inp.checked_from or []),
        *([inp.draft_from] if inp.draft_from is not None else []),
    ]
    [refusals], store = stored_inputs.read_ahead(
        deps().store, inp.task_id, names, with_keys=[artifacts.web_refusals_key(inp.task_id)]
    )
    if inp.sources_from is not None:
        sources = stored_inputs.stored_sources(store, inp.task_id, inp.sources_from)
        inp = inp.model_copy(update={"sources": sources})
    if inp.checked_from is not None:
        checked = stored_inputs.stored_checks(store, inp.task_id, inp.checked_from)
        inp = inp.model_copy(update={"checked": checked})
    if inp.draft_from is not None:
        [draft_document] = store.get_many(inp.task_id, [inp.draft_from])
        if draft_document is None:
            raise stored_inputs.MissingArtifact(f"the run's draft {inp.draft_from!r} is not stored")
        inp = inp.model_copy(update={"draft": draft_document})
    draft = WriterOutput.model_validate(inp.draft)
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
        llm_endpoint=inp.endpoint.describe(),
        rounds=inp.rounds,
        remaining_gaps=inp.remaining_gaps,
        spend=inp.spend,
        refused_pages=[
            RefusedPage(url=url, reason=reason)
            for url, reason in sorted(artifacts.refused_pages(refusals).items())
        ],
    )
    if inp.compare_with is not None:
        report.changes = _changes_since(inp.compare_with, report)
    document = report.model_dump(mode="json")
    document["markdown"] = render_markdown(report)
    key = deps().store.put(inp.task_id, artifacts.REPORT, document)
    if inp.schedule is not None:
        _notify_scheduled_completion(inp.schedule, report)
    return FinalizeResult(report_key=key, integrity=integrity).model_dump(mode="json")


def _changes_since(previous_task_id: str, report: Report) -> Changes:
    previous = deps().store.get(previous_task_id, artifacts.REPORT)
    if previous is None:
        return changes.missing_previous(previous_task_id)
    return changes.compare(
        changes.ReportFacts.of(previous), changes.ReportFacts.of(report.model_dump(mode="json"))
    )


def _notify_scheduled_completion(schedule: str, report: Report) -> None:
    """A scheduled run's report is stored: say so, and say what changed (or that nothing did).

    Sent from the finalize step, the run's last one, so the coordinator needs no new
    version; a retried finalize may send them twice (notices are at-least-once).
    """
    notifier = deps().notifier
    data: dict[str, object] = {"schedule": schedule}
    notifier.send(
        Notice(
            task_id=report.task_id,
            kind="run_completed",
            message=f"scheduled run of {schedule} completed: {report.title}",
            data=data,
        )
    )
    c = report.changes
    if c is None:
        return
    notifier.send(
        Notice(
            task_id=report.task_id,
            kind="changed" if c.changed else "unchanged",
            message=c.summary,
            data={**data, "compare_with": c.previous_task_id},
        )
    )


# -- notices, compensation, cancellation ---------------------------------------


def notify(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> None:
    deps().notifier.send(Notice.model_validate(raw))


def delete_artifacts(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> list[str]:
    inp = DeleteInput.model_validate(raw)
    store = deps().store
    # Before deleting: an activity of this run still running writes nothing that stays.
    store.mark_compensated(inp.task_id)
    deleted = store.delete(inp.task_id, inp.names)
    # The refused web pages are listed for the report's appendix, and there is no report.
    store.delete_web_refusals(inp.task_id)
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


def activities() -> dict[str, Callable[..., Any]]:
    """Every activity by its wire name: one per agent, then the plain I/O ones."""
    by_name: dict[str, Callable[..., Any]] = {
        names.agent_activity(agent.name): agent_activity(agent) for agent in all_agents().values()
    }
    by_name.update(
        {
            names.SEARCH_SOURCES: search_sources,
            names.SEARCH_CANDIDATES: search_candidates,
            names.PROPOSE_AND_SEARCH: propose_and_search,
            names.JUDGE_CANDIDATES: judge_candidates,
            names.FIND_SOURCES: find_sources,
            names.GATHER_SOURCES: gather_sources,
            names.STORE_ARTIFACT: store_artifact,
            names.FINALIZE_REPORT: finalize_report,
            names.NOTIFY: notify,
            names.DELETE_ARTIFACTS: delete_artifacts,
            names.CANCEL_CHILDREN: cancel_children,
        }
    )
    return by_name
