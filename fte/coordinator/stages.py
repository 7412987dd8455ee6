"""The coordinator's stages, in pipeline order, and compensation.

Each stage schedules its work (an agent activity or a specialist child workflow),
waits through `Run.wait` (check-ins, cancel), re-validates what came back, and
records usage and progress. Business rules that belong to an agent live in the
agent's module; the rules here are about the run as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import dapr.ext.workflow as wf

from fte import artifacts, names
from fte.agents import analyst, fact_checker, planner, source_finder, writer
from fte.contracts import (
    OFFLINE_MODEL,
    AgentReply,
    CancelChildrenInput,
    CheckedClaim,
    DeleteInput,
    FinalizeInput,
    FinalizeResult,
    Gap,
    Gathered,
    GatherInput,
    ModelEndpoint,
    QuotedSource,
    RoundReport,
    Source,
    SourceFinderInput,
    SourceFinderResult,
    SourcesKept,
    Spend,
)
from fte.coordinator.progress import iso
from fte.coordinator.run import Flow, Run, RunEnded
from fte.retry_policies import COMPENSATION_RETRY, IO_RETRY

# The specialist agents the coordinator runs as child workflows of their own.
SPECIALISTS = (analyst.AGENT, fact_checker.AGENT, writer.AGENT)


@dataclass
class Stored:
    """The artifacts that hold a run's sources and fact checks, in order (coordinator v3)."""

    sources: list[str] = field(default_factory=lambda: [artifacts.SOURCES])
    checks: list[str] = field(default_factory=lambda: [artifacts.CLAIMS])


def plan(run: Run) -> Flow:
    run.progress.enter("planning")
    raw = yield from run.wait(
        run.ask(
            planner.AGENT,
            planner.PlannerInput(query=run.cfg.query, max_sub_questions=run.cfg.max_sub_questions),
            model=run.cfg.models.planner,
            artifact=artifacts.PLAN,
        )
    )
    result, usage = planner.AGENT.reply(raw)
    run.progress.add_usage(planner.AGENT.name, usage)
    run.sub_question_ids = [q.id for q in result.sub_questions]
    run.progress.set_sub_questions(result.sub_questions)
    return result


def find_sources(run: Run, research_plan: planner.Plan, *, offline: bool = False) -> Flow:
    """`offline`: the source finders ask the built-in offline model, which costs nothing
    (a budget that cannot pay for one search)."""
    run.progress.enter("finding_sources")
    # v2's lean source finders keep passages out of history (`Run.lean`).
    workflow = run.source_finder
    progress = run.progress.state
    for item in progress.sub_questions:
        item.state = "searching"
    run.progress.publish()
    tasks = [
        run.child(
            workflow,
            f"sources.{q.id}",
            SourceFinderInput(
                task_id=run.task_id,
                sub_question=q,
                corpus_dir=run.cfg.corpus_dir,
                endpoint=ModelEndpoint(offline=True) if offline else run.cfg.endpoint,
                model=OFFLINE_MODEL if offline else run.cfg.models.source_finder,
                keep=run.cfg.sources_per_question,
                candidates=run.cfg.search_candidates,
                sources=run.cfg.sources,
            ),
        )
        for q in research_plan.sub_questions
    ]
    # Sub-questions report progress as each child finishes, not only at the end.
    pending = list(tasks)
    while pending:
        done = yield from run.wait(wf.when_any(pending))
        pending.remove(done)
        result = kept(done.get_result())
        item = next(i for i in progress.sub_questions if i.id == result.sub_question_id)
        item.state = "done"
        item.sources = result.kept
        progress.sources_found += result.kept
        if not offline:  # the offline model spends nothing
            run.progress.add_usage("source_finder", result.usage)
        run.progress.publish()

    # Sub-question order, not finishing order, so source IDs never depend on timing.
    if run.lean:
        # The passages' text is in the source finders' artifacts; an activity numbers and
        # stores them, and the run keeps them without their text.
        sources = yield from gather_sources(
            run, [artifacts.sources_for(q.id) for q in research_plan.sub_questions], []
        )
    else:
        sources = consolidate([SourceFinderResult.model_validate(t.get_result()) for t in tasks])
    progress.sources_found = len(sources)
    run.progress.publish()
    if not sources:
        raise RunEnded(
            "failed", f"no relevant source found in {run.cfg.corpus_dir} for any sub-question"
        )
    if not run.lean:
        yield run.store(
            artifacts.SOURCES, {"sources": [s.model_dump(mode="json") for s in sources]}
        )
    return sources


def kept(raw: dict[str, Any]) -> SourcesKept:
    """What a source finder reports, from either kind (the lean one returns only a count)."""
    if "kept" in raw:
        return SourcesKept.model_validate(raw)
    result = SourceFinderResult.model_validate(raw)
    return SourcesKept(
        sub_question_id=result.sub_question_id, kept=len(result.passages), usage=result.usage
    )


def gather_sources(
    run: Run, found: list[str], known: list[Source], *, name: str = artifacts.SOURCES
) -> Flow:
    """The new sources in the artifacts `found`, stored as `name` (when there are any) and
    returned without their text."""
    raw = yield from run.wait(
        run.ctx.call_activity(
            names.GATHER_SOURCES,
            input=GatherInput(
                task_id=run.task_id,
                found=found,
                known_passage_ids=[s.passage_id for s in known],
                numbered_from=len(known),
                name=name,
            ),
            retry_policy=IO_RETRY,
        )
    )
    sources: list[Source] = Gathered.model_validate(raw).sources
    return sources


def consolidate(results: list[SourceFinderResult]) -> list[Source]:
    """One source per distinct passage, numbered S1, S2, ... in the order given."""
    return source_finder.number_new(results, known_passage_ids=set(), numbered_from=0)


def analyse(
    run: Run,
    research_plan: planner.Plan,
    sources: list[Source],
    *,
    offline: bool = False,
    sources_from: list[str] | None = None,
) -> Flow:
    """`offline`: on the built-in offline model, which costs nothing (a budget's last resort).
    `sources_from`: the artifacts the activity reads the sources' text from (lean history);
    coordinator v3 sends no source at all, and the activity quotes every one stored there."""
    run.progress.enter("analysing")
    from_store = run.lean_claims and sources_from is not None
    raw = yield from run.wait(
        run.specialist(
            analyst.AGENT,
            analyst.AnalystInput(
                query=run.cfg.query,
                sub_questions=research_plan.sub_questions,
                sources=[] if from_store else [QuotedSource.of(s) for s in sources],
            ),
            model=OFFLINE_MODEL if offline else run.cfg.models.analyst,
            artifact=artifacts.NOTES,
            offline=offline,
            sources_from=sources_from,
            from_store=from_store,
            reply="brief" if run.lean_claims else "full",
        )
    )
    analysis, usage = analyst.AGENT.reply(raw)
    if not offline:  # the offline model spends nothing
        run.progress.add_usage(analyst.AGENT.name, usage)
    run.progress.state.claims = len(analysis.claims)
    run.progress.publish()
    if not analysis.claims:
        raise RunEnded("failed", "the analyst extracted no claim backed by a retrieved source")
    return analysis


def fact_check(
    run: Run,
    analysis: analyst.Analysis,
    sources: list[Source],
    *,
    offline: bool = False,
    sources_from: list[str] | None = None,
) -> Flow:
    run.progress.enter("fact_checking")
    # Coordinator v3: the activity checks the claims of the analyst's notes, as noted.
    from_store = run.lean_claims and sources_from is not None
    to_check = fact_checker.FactCheckInput(claims=[])
    if not from_store:
        to_check = fact_checker.claims_to_check(
            analysis.claims, [QuotedSource.of(s) for s in sources]
        )
    raw = yield from run.wait(
        run.specialist(
            fact_checker.AGENT,
            to_check,
            model=OFFLINE_MODEL if offline else run.cfg.models.fact_checker,
            artifact=artifacts.CLAIMS,
            offline=offline,
            sources_from=sources_from,
            claims_from=[artifacts.NOTES] if from_store else None,
            from_store=from_store,
            reply="brief" if run.lean_claims else "full",
        )
    )
    checked, usage = fact_checker.AGENT.reply(raw)
    if not offline:
        run.progress.add_usage(fact_checker.AGENT.name, usage)
    if not any(c.verdict == "supported" for c in checked.checked):
        raise RunEnded("failed", "no claim was supported by its cited sources")
    return checked


def write(
    run: Run,
    research_plan: planner.Plan,
    checked: fact_checker.FactCheck,
    sources: list[Source],
    *,
    offline: bool = False,
    stored: Stored | None = None,
) -> Flow:
    """Returns the draft, or None when it stays in its artifact (`stored`, coordinator v3:
    the activity builds the writer's input from the fact checks and sources named there,
    and the report is finalized from the stored draft)."""
    run.progress.enter("writing")
    if stored is None:
        inputs = writer.WriterInput.of(
            run.cfg.query, research_plan.sub_questions, checked.checked, sources
        )
    else:
        inputs = writer.WriterInput(
            query=run.cfg.query, sub_questions=research_plan.sub_questions, claims=[], sources=[]
        )
    raw = yield from run.wait(
        run.specialist(
            writer.AGENT,
            inputs,
            model=OFFLINE_MODEL if offline else run.cfg.models.writer,
            artifact=artifacts.DRAFT,
            offline=offline,
            sources_from=None if stored is None else stored.sources,
            claims_from=None if stored is None else stored.checks,
            from_store=stored is not None,
            reply="full" if stored is None else "usage",
        )
    )
    reply = AgentReply.model_validate(raw)
    if not offline:
        run.progress.add_usage(writer.AGENT.name, reply.usage)
    if stored is not None:
        return None
    draft, _ = writer.AGENT.reply(raw)
    return draft


def finalize(
    run: Run,
    research_plan: planner.Plan,
    sources: list[Source],
    checked: list[CheckedClaim],
    draft: writer.WriterOutput | None,
    *,
    rounds: list[RoundReport] | None = None,
    remaining_gaps: list[Gap] | None = None,
    spend: Spend | None = None,
    sources_from: list[str] | None = None,
    stored: Stored | None = None,
) -> Flow:
    """`stored` (coordinator v3): the activity reads the draft, the fact checks and the
    sources from the artifacts named there; `sources_from` (v2): only the sources."""
    run.progress.enter("finalizing")
    if stored is not None:
        sources_from = stored.sources
    raw = yield from run.wait(
        run.ctx.call_activity(
            names.FINALIZE_REPORT,
            input=FinalizeInput(
                task_id=run.task_id,
                query=run.cfg.query,
                draft={} if draft is None else draft.model_dump(mode="json"),
                # Read from the artifacts by the activity when they are named.
                sources=[] if sources_from is not None else sources,
                checked=[] if stored is not None else checked,
                sub_questions=research_plan.sub_questions,
                plan_rationale=research_plan.rationale,
                policy=run.cfg.citation_policy,
                usage_by_agent=run.progress.state.usage_by_agent,
                stage_seconds=run.progress.stage_seconds,
                models=run.cfg.models,
                endpoint=run.cfg.endpoint,
                started_at=iso(run.started),
                finished_at=iso(run.ctx.current_utc_datetime),
                schedule=run.cfg.schedule,
                compare_with=run.cfg.compare_with,
                rounds=rounds or [],
                remaining_gaps=remaining_gaps or [],
                spend=spend,
                sources_from=sources_from,
                checked_from=None if stored is None else stored.checks,
                draft_from=None if stored is None else artifacts.DRAFT,
            ),
            retry_policy=IO_RETRY,
        )
    )
    return FinalizeResult.model_validate(raw)


def compensate(run: Run) -> Flow:
    """Stop running children, then delete every artifact this run may have written."""
    run.progress.enter("compensating")
    if run.children:
        yield run.ctx.call_activity(
            names.CANCEL_CHILDREN,
            input=CancelChildrenInput(instance_ids=run.children),
            retry_policy=COMPENSATION_RETRY,
        )
    first_pass = artifacts.run_artifact_stages(run.sub_question_ids)
    if run.lean:  # lean source finders store their candidates too (v1 deletes as it did)
        candidates = [artifacts.candidates_for(q) for q in run.sub_question_ids]
        first_pass[1] = [*candidates, *first_pass[1]]
    # Gap-filling rounds (coordinator v2) write theirs after the fact check, before the draft.
    written = [*first_pass[:4], *run.round_artifacts, *first_pass[4:]]
    for stage in reversed(written):
        yield run.ctx.call_activity(
            names.DELETE_ARTIFACTS,
            input=DeleteInput(task_id=run.task_id, names=stage),
            retry_policy=COMPENSATION_RETRY,
        )
