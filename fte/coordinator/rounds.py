"""Coordinator v2: the first pass, then gap-filling rounds, all within the run's budget.

After the first pass has been fact-checked, each round asks the reviewer what is not
settled yet (unanswered sub-questions, doubtful claims, follow-ups), sends a source finder
after each gap (looking past the passages the run already has), and analyses and
fact-checks only what is new; its claims join the run's. Up to `RunConfig.depth` rounds;
a round that finds no gap ends them.

Before each fan-out and each round the budget is checked (`budget.fits`) for that step
plus what the report still needs; when it does not fit, the research stops there and the
report is written from what the run has, saying so. Every round's children and artifacts
have names of their own (`<task>.sources.g2.1`, `notes.round2`, ...), so a replay after a
crash finds every finished round in history, and compensation deletes what every round
may have written.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Literal

import dapr.ext.workflow as wf
from pydantic import BaseModel

from fte import artifacts
from fte.agents import analyst, fact_checker, planner, reviewer
from fte.agents.agent import Agent, ResT
from fte.contracts import (
    CheckedClaim,
    Claim,
    Gap,
    QuotedSource,
    RoundReport,
    Source,
    SourceFinderInput,
)
from fte.coordinator import budget, stages
from fte.coordinator.approval import approval_gate
from fte.coordinator.run import Flow, Run

# What the report cannot do without once sources are found: analysis, fact check, writing.
_TO_REPORT = {"analyst": 1, "fact_checker": 1, "writer": 1}
_PER_SOURCE_FINDER = {"source_finder": budget.SOURCE_FINDER_CALLS}


@dataclass
class Research:
    """What the run knows so far, grown by every round."""

    plan: planner.Plan
    sources: list[Source]
    checked: list[CheckedClaim]
    searched: list[str] = field(default_factory=list)
    unsearched: list[Gap] = field(default_factory=list)
    # The artifacts holding the sources' text (`sources` holds none) and the fact checks.
    stored: stages.Stored = field(default_factory=stages.Stored)


def refresh_spend(run: Run) -> None:
    """Progress shows spend against the budget (a run without one shows tokens as before)."""
    if not run.cfg.budget.limited:
        return
    stopped = run.progress.state.spend.stopped if run.progress.state.spend else None
    spend = budget.spent(run.cfg, run.progress.state.usage_by_agent)
    run.progress.state.spend = spend.model_copy(update={"stopped": stopped})
    run.progress.publish()


def stop_research(run: Run, why: str) -> None:
    """The budget ends the research here (or changes how it ends); the report says why."""
    spend = budget.spent(run.cfg, run.progress.state.usage_by_agent)
    if run.budget_note is None:
        run.budget_note = f"the budget ended the research: {why} (spent {spend.describe()})"
    else:
        run.budget_note += f"; then {why} (spent {spend.describe()})"
    run.progress.state.spend = spend.model_copy(update={"stopped": run.budget_note})
    run.progress.publish()


def fits(run: Run, calls: dict[str, int]) -> bool:
    return budget.fits(run.cfg, run.progress.state.usage_by_agent, calls)


def on_the_run_model(run: Run, agent: str, step: str) -> bool:
    """Whether a step the report needs fits the budget; if not, it runs on the built-in
    offline model, which costs nothing, and the report says so. Checking before every such
    step is what keeps an estimate that was too low from passing the budget twice."""
    if fits(run, {agent: 1}):
        return True
    stop_research(run, f"{step} ran on the built-in offline model, which costs nothing")
    return False


def pipeline_v2(run: Run) -> Flow:
    """The first pass (as v1, its source fan-out within the budget), rounds, report."""
    run.progress.state.depth = run.cfg.depth
    run.lean = True
    plan = yield from stages.plan(run)
    if run.cfg.require_approval:
        plan = yield from approval_gate(run, plan)
    refresh_spend(run)
    wanted = len(plan.sub_questions)
    searchable = budget.largest_fan_out(
        run.cfg,
        run.progress.state.usage_by_agent,
        wanted,
        per_child=_PER_SOURCE_FINDER,
        then=_TO_REPORT,
    )
    # Not even one paid search fits with the report after it: the plan is paid for, so the
    # first sub-question is searched on the built-in offline model, which costs nothing, and
    # the report says so, rather than the run failing with nothing to show. (Runs never
    # replay through this branch differently: before it, such a run failed and ended.)
    search_offline = searchable == 0
    searched_plan = plan
    if search_offline:
        stop_research(
            run,
            f"searched 1 of {wanted} sub-questions, on the built-in offline model, "
            "which costs nothing",
        )
        searched_plan = plan.model_copy(update={"sub_questions": plan.sub_questions[:1]})
    elif searchable < wanted:
        stop_research(run, f"searched {searchable} of {wanted} sub-questions")
        searched_plan = plan.model_copy(update={"sub_questions": plan.sub_questions[:searchable]})
    sources = yield from stages.find_sources(run, searched_plan, offline=search_offline)
    searched = {q.id for q in searched_plan.sub_questions}
    for item in run.progress.state.sub_questions:
        if item.id not in searched:
            item.state = "pending"  # never searched: the budget stopped the fan-out
    refresh_spend(run)
    paid = on_the_run_model(run, "analyst", "the analysis")
    analysis = yield from stages.analyse(
        run, plan, sources, offline=not paid, sources_from=[artifacts.SOURCES]
    )
    refresh_spend(run)
    paid = on_the_run_model(run, "fact_checker", "the fact check")
    first = yield from stages.fact_check(
        run, analysis, sources, offline=not paid, sources_from=[artifacts.SOURCES]
    )
    refresh_spend(run)
    research = Research(plan=plan, sources=sources, checked=list(first.checked))

    for number in range(1, run.cfg.depth + 1):
        if run.budget_note is not None:
            break
        more = yield from gap_round(run, research, number)
        if not more:
            break

    paid = on_the_run_model(run, "writer", "the writing")
    # v3 leaves the draft, and what it is written from, in the state store.
    stored = research.stored if run.lean_claims else None
    draft = yield from stages.write(
        run,
        plan,
        fact_checker.FactCheck(checked=research.checked),
        research.sources,
        offline=not paid,
        stored=stored,
    )
    refresh_spend(run)
    return (
        yield from stages.finalize(
            run,
            plan,
            research.sources,
            research.checked,
            draft,
            rounds=run.progress.state.rounds,
            # Depth 0 is the one-pass run as it always was, report included.
            remaining_gaps=remaining_gaps(run, research) if run.cfg.depth else [],
            spend=run.progress.state.spend,
            sources_from=research.stored.sources,
            stored=stored,
        )
    )


def gap_round(run: Run, research: Research, number: int) -> Flow:
    """One round; returns whether another round may follow."""
    report = RoundReport(round=number)
    run.progress.state.round = number
    run.progress.state.rounds.append(report)
    run.progress.enter("reviewing")
    if not fits(run, {"reviewer": 1, "writer": 1}):
        stop_research(run, f"round {number} was not started")
        report.state, report.note = "done", "not started: budget"
        return False

    review_name = artifacts.round_artifact(artifacts.REVIEW, number)
    run.round_artifacts.append([review_name])
    raw = yield from run.wait(
        run.ask(
            reviewer.AGENT,
            reviewer.ReviewInput(
                query=run.cfg.query,
                round=number,
                sub_questions=research.plan.sub_questions,
                claims=[reviewer.ReviewedClaim.of(c) for c in research.checked],
                searched=research.searched,
                max_gaps=min(reviewer.MAX_GAPS, run.cfg.max_sub_questions),
            ),
            model=run.cfg.models.reviewer,
            artifact=review_name,
        )
    )
    review, usage = reviewer.AGENT.reply(raw)
    run.progress.add_usage(reviewer.AGENT.name, usage)
    refresh_spend(run)
    gaps = review.gaps
    research.unsearched = list(gaps)
    if not gaps:
        report.state, report.note = "done", "nothing left to look for"
        run.progress.publish()
        return False

    searchable = budget.largest_fan_out(
        run.cfg,
        run.progress.state.usage_by_agent,
        len(gaps),
        per_child=_PER_SOURCE_FINDER,
        then=_TO_REPORT,
    )
    if searchable < len(gaps):
        stop_research(run, f"round {number} searched {searchable} of {len(gaps)} gaps")
    if searchable == 0:
        report.state, report.note = "done", "no gap searched: budget"
        return False
    looked, research.unsearched = gaps[:searchable], gaps[searchable:]
    report.looked_for, report.state = looked, "searching"
    research.searched += [g.question for g in looked]

    new_sources = yield from search_gaps(run, research, looked, number)
    report.sources_found = [s.id for s in new_sources]
    refresh_spend(run)
    if not new_sources:
        report.state, report.note = "done", "no new source found"
        run.progress.publish()
        return run.budget_note is None
    if not fits(run, _TO_REPORT):
        stop_research(run, f"round {number}'s new sources were not analysed")
        report.state, report.note = "done", "new sources not analysed: budget"
        return False

    added = yield from analyse_and_check(run, research, report, new_sources)
    report.claims_added = [c.claim.id for c in added]
    report.supported_added = sum(c.verdict == "supported" for c in added)
    report.state = "done"
    refresh_spend(run)
    return run.budget_note is None


def search_gaps(run: Run, research: Research, gaps: list[Gap], number: int) -> Flow:
    """One source finder per gap, past the passages the run has; returns the new sources."""
    run.progress.enter("finding_sources")
    run.round_artifacts.append(
        [
            *(artifacts.candidates_for(g.id) for g in gaps),
            *(artifacts.sources_for(g.id) for g in gaps),
            artifacts.round_artifact(artifacts.SOURCES, number),
        ]
    )
    known = [s.passage_id for s in research.sources]
    tasks = [
        run.child(
            run.source_finder,
            f"sources.{gap.id}",
            SourceFinderInput(
                task_id=run.task_id,
                sub_question=gap.as_sub_question(),
                corpus_dir=run.cfg.corpus_dir,
                endpoint=run.cfg.endpoint,
                model=run.cfg.models.source_finder,
                keep=run.cfg.sources_per_question,
                candidates=run.cfg.search_candidates,
                exclude_passage_ids=known,
                sources=run.cfg.sources,
            ),
        )
        for gap in gaps
    ]
    pending = list(tasks)
    while pending:
        done = yield from run.wait(wf.when_any(pending))
        pending.remove(done)
        result = stages.kept(done.get_result())
        run.progress.add_usage("source_finder", result.usage)
        run.progress.publish()
    # Numbered and stored by an activity: the passages' text stays in the state store.
    stored = artifacts.round_artifact(artifacts.SOURCES, number)
    new: list[Source] = yield from stages.gather_sources(
        run, [artifacts.sources_for(g.id) for g in gaps], research.sources, name=stored
    )
    research.sources = [*research.sources, *new]
    if new:
        research.stored.sources.append(stored)
    run.progress.state.sources_found = len(research.sources)
    run.progress.publish()
    return new


def analyse_and_check(
    run: Run, research: Research, report: RoundReport, new_sources: list[Source]
) -> Flow:
    """Claims from the new sources only, fact-checked; returns them, already merged."""
    gaps, number = report.looked_for, report.round
    quoted = [QuotedSource.of(s) for s in new_sources]
    analysis = yield from _round_step(
        run,
        report,
        "analysing",
        analyst.AGENT,
        analyst.AnalystInput(
            query=run.cfg.query,
            sub_questions=[g.as_sub_question() for g in gaps],
            # v3: the activity quotes every source of the round's artifact, all new ones.
            sources=[] if run.lean_claims else quoted,
        ),
        model=run.cfg.models.analyst,
        kind=artifacts.NOTES,
        from_store=run.lean_claims,
    )
    if not analysis.claims:
        return []
    # Claim IDs go on from the run's; a gap's claims answer the sub-question it was about.
    answers = {g.id: g.sub_question_id for g in gaps}
    offset = len(research.checked)
    claims = [
        Claim(
            id=f"C{offset + i}",
            text=c.text,
            source_ids=c.source_ids,
            sub_question_id=answers.get(c.sub_question_id or ""),
        )
        for i, c in enumerate(analysis.claims, 1)
    ]
    run.progress.state.claims = offset + len(claims)
    refresh_spend(run)
    if not fits(run, {"fact_checker": 1, "writer": 1}):
        # Unchecked claims never reach the report; the research ends here.
        stop_research(run, f"round {number}'s new claims were not fact-checked")
        report.note = "new claims not fact-checked: budget"
        return []

    checked = yield from _round_step(
        run,
        report,
        "fact_checking",
        fact_checker.AGENT,
        fact_checker.claims_to_check(claims, quoted),
        model=run.cfg.models.fact_checker,
        kind=artifacts.CLAIMS,
    )
    research.checked = [*research.checked, *checked.checked]
    research.stored.checks.append(artifacts.round_artifact(artifacts.CLAIMS, number))
    return checked.checked


def _round_step(
    run: Run,
    report: RoundReport,
    stage: Literal["analysing", "fact_checking"],
    agent: Agent[Any, Any, ResT],
    inputs: BaseModel,
    *,
    model: str,
    kind: str,
    from_store: bool = False,
) -> Generator[Any, Any, ResT]:
    """One agent's step of a gap round, as its own child workflow `<task>.<agent>.round<n>`:
    enter the stage, run the agent on the round's sources, count its usage."""
    number = report.round
    report.state = stage
    run.progress.enter(stage)
    name = artifacts.round_artifact(kind, number)
    run.round_artifacts.append([name])
    raw = yield from run.wait(
        run.specialist(
            agent,
            inputs,
            model=model,
            artifact=name,
            role=f"{agent.name}.round{number}",
            sources_from=[artifacts.round_artifact(artifacts.SOURCES, number)],
            from_store=from_store,
            reply="brief" if run.lean_claims else "full",
        )
    )
    result, usage = agent.reply(raw)
    run.progress.add_usage(agent.name, usage)
    return result


def remaining_gaps(run: Run, research: Research) -> list[Gap]:
    """What is still open at the end: the verdicts' gaps, and found gaps no round searched."""
    leftover = [
        reviewer.ProposedGap(**g.model_dump(exclude={"id"}))
        for g in research.unsearched
        if g.kind == "follow_up"
    ]
    review = reviewer.rules(
        reviewer.ReviewInput(
            query=run.cfg.query,
            round=run.progress.state.round + 1,
            sub_questions=research.plan.sub_questions,
            claims=[reviewer.ReviewedClaim.of(c) for c in research.checked],
            max_gaps=reviewer.MAX_GAPS,
        ),
        reviewer.ReviewOutput(gaps=leftover),
    )
    return review.gaps
