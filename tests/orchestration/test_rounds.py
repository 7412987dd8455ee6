"""Coordinator v2 on the orchestration harness: gap-filling rounds and the budget; no sidecar.

The engine's side is test_coordinator's scripted pipeline (every agent reply reports the
same usage, USAGE), plus a scripted reviewer and source finders that find new passages for
the gaps. Budgets are in tokens here, so each check is plain arithmetic on USAGE.
"""

from __future__ import annotations

from typing import Any

import pytest

from fte import artifacts, names, stored_inputs
from fte.agents import analyst, fact_checker, reviewer, source_finder
from fte.contracts import (
    OFFLINE_MODEL,
    AgentTask,
    Budget,
    CheckedClaim,
    Claim,
    FinalizeInput,
    Gap,
    Gathered,
    ModelPrice,
    Outcome,
    SourceFinderInput,
    SourceFinderResult,
    TokenUsage,
)
from fte.coordinator import LATEST, VERSIONS, budget, research_workflow, research_workflow_v2
from fte.wiring import register
from fte.worker import Registry
from tests.orchestration.test_coordinator import (
    ANALYST,
    FACT_CHECKER,
    FINDER,
    FOUND,
    GATHER,
    PIPELINE,
    PLANNER,
    QUESTIONS,
    STORED,
    TASK,
    USAGE,
    WRITER,
    analyse,
    as_the_activity_runs,
    config,
    deletions,
    finding,
    gather_from,
    inputs_of,
    outcome,
    passage,
    progress,
    reply,
    start,
    work,
)
from tests.support.orchestration import Child, Completed, Failed, Responder, WorkflowHarness

REVIEWER = names.agent_activity(reviewer.AGENT.name)
GAPS = [
    Gap(
        id="g1.1",
        kind="unanswered",
        question="How does compensation undo work?",
        sub_question_id="q3",
    ),
    Gap(id="g1.2", kind="follow_up", question="Why do timers drift?"),
]
# What the gap searches find: "shared" is a passage the first pass already has.
GAP_FOUND = {"g1.1": ["shared", "undo-2"], "g1.2": ["drift-1"], "g2.1": [], "g2.2": ["saga-1"]}
CALL = USAGE.total_tokens


def review_of(*rounds: list[Gap]) -> Responder:
    """Round n's review lists rounds[n-1] (renumbered for that round); then nothing."""

    def answer(raw: Any) -> Any:
        task = AgentTask.model_validate(raw)
        inputs = reviewer.ReviewInput.model_validate(task.inputs)
        gaps = rounds[inputs.round - 1] if inputs.round <= len(rounds) else []
        renumbered = [
            g.model_copy(update={"id": f"g{inputs.round}.{n}"}) for n, g in enumerate(gaps, 1)
        ]
        return reply(reviewer.Review(gaps=renumbered))

    return answer


@as_the_activity_runs
def analyse_gaps(raw: Any) -> Any:
    """The first pass as test_coordinator's; a round's claims answer the gap they were for."""
    inputs = analyst.AnalystInput.model_validate(AgentTask.model_validate(raw).inputs)
    if not inputs.sub_questions[0].id.startswith("g"):
        return analyse(raw)
    claims = [
        Claim(
            id=f"C{i}",
            text=f"Claim from {s.id}.",
            source_ids=[s.id],
            sub_question_id=inputs.sub_questions[min(i, len(inputs.sub_questions)) - 1].id,
        )
        for i, s in enumerate(inputs.sources, 1)
    ]
    return reply(analyst.Analysis(claims=claims, summary="round"))


@as_the_activity_runs
def check(raw: Any) -> Any:
    """Every claim supported by its first cited source, its sub-question kept (as the real
    fact checker's rules keep it)."""
    inputs = fact_checker.FactCheckInput.model_validate(AgentTask.model_validate(raw).inputs)
    checked = [
        CheckedClaim(
            claim=Claim(
                id=c.id,
                text=c.text,
                source_ids=[s.id for s in c.cited_sources],
                sub_question_id=c.sub_question_id,
            ),
            verdict="supported",
            evidence=c.text,
            evidence_source_id=c.cited_sources[0].id,
        )
        for c in inputs.claims
    ]
    return reply(fact_checker.FactCheck(checked=checked))


ROUNDS: dict[str, Responder] = {
    **PIPELINE,
    FACT_CHECKER: check,
    REVIEWER: review_of(GAPS),
    **finding({**FOUND, **GAP_FOUND}),
    ANALYST: analyse_gaps,
}


def rounds(**overrides: Responder) -> dict[str, Responder]:
    return {**ROUNDS, **overrides}


def finalized(h: WorkflowHarness) -> FinalizeInput:
    [raw] = inputs_of(h, names.FINALIZE_REPORT)
    return FinalizeInput.model_validate(raw)


def children(h: WorkflowHarness) -> list[str]:
    return [a.instance_id for a in h.issued if isinstance(a, Child)]


# -- rounds ---------------------------------------------------------------------------------


def test_depth_zero_is_the_first_pass_only() -> None:
    h = start(depth=0)
    assert h.run_until_blocked(ROUNDS) == []
    assert REVIEWER not in work(h.issued)
    assert finalized(h).rounds == [] and finalized(h).remaining_gaps == []
    assert outcome(h).status == "completed" and outcome(h).reason is None


def test_a_round_searches_the_gaps_and_checks_only_what_is_new() -> None:
    h = start(depth=1)
    assert h.run_until_blocked(ROUNDS) == []

    assert children(h) == [
        "r1.sources.q1",
        "r1.sources.q2",
        "r1.sources.q3",
        "r1.analyst",
        "r1.fact_checker",
        "r1.sources.g1.1",
        "r1.sources.g1.2",
        "r1.analyst.round1",
        "r1.fact_checker.round1",
        "r1.writer",
    ]
    [review] = inputs_of(h, REVIEWER)
    task = AgentTask.model_validate(review)
    assert (task.artifact, task.model) == ("review.round1", "gpt-4o-mini")
    review_input = reviewer.ReviewInput.model_validate(task.inputs)
    assert [c.id for c in review_input.claims] == ["C1", "C2", "C3", "C4", "C5"]
    assert review_input.searched == []

    finders = {
        c.instance_id: SourceFinderInput.model_validate(c.input)
        for c in h.issued
        if isinstance(c, Child) and c.name == FINDER
    }
    gap_finder = finders["r1.sources.g1.1"]
    assert gap_finder.sub_question.text == GAPS[0].question
    # The round looks past every passage the first pass kept.
    assert gap_finder.exclude_passage_ids == [
        "timers-1",
        "timers-2",
        "retries-1",
        "shared",
        "undo-1",
    ]
    assert finders["r1.sources.q1"].exclude_passage_ids == []

    [round_analyst] = [
        c for c in h.issued if isinstance(c, Child) and c.instance_id == "r1.analyst.round1"
    ]
    analysed = AgentTask.model_validate(round_analyst.input)
    assert analysed.artifact == "notes.round1"
    assert analysed.from_store and analysed.inputs["sources"] == []
    inputs = analyst.AnalystInput.model_validate(stored_inputs.complete(STORED, analysed))
    # Only the new passages, numbered on from the first pass's S5; "shared" is not new.
    assert [(s.id, s.title) for s in inputs.sources] == [
        ("S6", "Doc undo-2"),
        ("S7", "Doc drift-1"),
    ]
    assert [q.id for q in inputs.sub_questions] == ["g1.1", "g1.2"]

    final = finalized(h)
    [done] = final.rounds
    assert [g.id for g in done.looked_for] == ["g1.1", "g1.2"]
    assert (done.sources_found, done.claims_added, done.supported_added) == (
        ["S6", "S7"],
        ["C6", "C7"],
        2,
    )
    # C6 answers the gap about q3, so it counts for q3; a follow-up's claim answers no
    # planned sub-question.
    by_id = {c.claim.id: c.claim for c in checked_of(final)}
    assert (by_id["C6"].sub_question_id, by_id["C7"].sub_question_id) == ("q3", None)
    # Finalize reads the sources, the fact checks and the draft from their artifacts.
    assert final.sources == [] and final.sources_from == ["sources", "sources.round1"]
    assert final.checked == [] and final.checked_from == ["claims", "claims.round1"]
    assert final.draft == {} and final.draft_from == "draft"
    assert inputs_of(h, GATHER)[1] == {
        "task_id": TASK,
        "found": ["sources.g1.1", "sources.g1.2"],
        "known_passage_ids": ["timers-1", "timers-2", "retries-1", "shared", "undo-1"],
        "numbered_from": 5,
        "name": "sources.round1",
    }
    assert analysed.sources_from == ["sources.round1"]
    # The first pass's claims answer no sub-question (test_coordinator's analyst), so q1
    # and q2 are still open; q3 is answered now.
    assert [(g.kind, g.sub_question_id) for g in final.remaining_gaps] == [
        ("unanswered", "q1"),
        ("unanswered", "q2"),
    ]
    [writing] = [c for c in h.issued if isinstance(c, Child) and c.name == WRITER]
    writing_task = AgentTask.model_validate(writing.input)
    assert writing_task.inputs["claims"] == [] and writing_task.reply == "usage"
    assert writing_task.claims_from == ["claims", "claims.round1"]
    written = stored_inputs.complete(STORED, writing_task)
    assert [c["claim"]["id"] for c in written["claims"]] == [f"C{i}" for i in range(1, 8)]
    assert [s["id"] for s in written["sources"]] == [f"S{i}" for i in range(1, 8)]

    result = outcome(h)
    assert result.status == "completed" and result.reason is None
    # planner, 3 + 2 source finders, 2 analysts, 2 fact checkers, reviewer, writer
    assert result.usage.calls == 12
    final_progress = progress(h)
    assert (final_progress.round, final_progress.depth) == (1, 1)
    assert final_progress.rounds == final.rounds
    assert final_progress.sources_found == 7 and final_progress.claims == 7
    assert h.replay() == h.raw_actions


def test_later_rounds_do_not_repeat_a_search_and_stop_when_nothing_is_left() -> None:
    h = start(depth=3)
    repeat = [GAPS[1], Gap(id="x", kind="follow_up", question="What is a saga?")]
    h.run_until_blocked(rounds(**{REVIEWER: review_of(GAPS, repeat)}))
    reviews = [
        reviewer.ReviewInput.model_validate(AgentTask.model_validate(r).inputs)
        for r in inputs_of(h, REVIEWER)
    ]
    # Round 3's review finds nothing, so no round 4 is asked about (depth 3 allows none).
    assert [r.round for r in reviews] == [1, 2, 3]
    assert reviews[1].searched == [g.question for g in GAPS]
    assert reviews[2].claims[-1].id == "C8"
    assert [r.note for r in finalized(h).rounds] == ["", "", "nothing left to look for"]
    # The scripted reviewer repeats a searched gap in round 2; its source finder runs
    # under the round's own ID all the same (the real reviewer's rules drop repeats).
    assert "r1.sources.g2.2" in children(h)
    assert outcome(h).status == "completed"


def test_a_round_that_finds_nothing_new_adds_no_claim() -> None:
    h = start(depth=1)
    h.run_until_blocked(rounds(**finding(FOUND)))
    [done] = finalized(h).rounds
    assert (done.sources_found, done.claims_added, done.note) == ([], [], "no new source found")
    assert "r1.analyst.round1" not in children(h)
    assert outcome(h).status == "completed"


def test_a_rounds_sources_are_numbered_on_and_skip_known_passages() -> None:
    first_pass = {"task_id": TASK, "found": [f"sources.q{i}" for i in (1, 2, 3)], "name": "s"}
    known = Gathered.model_validate(gather_from(FOUND)(first_pass)).sources
    results = [
        SourceFinderResult(
            sub_question_id=gap,
            passages=[passage(p) for p in GAP_FOUND[gap]],
            retrieved_at="2030-01-01T00:00:00+00:00",
            usage=USAGE,
        )
        for gap in ("g1.1", "g1.2")
    ]
    new = source_finder.number_new(
        results, known_passage_ids={s.passage_id for s in known}, numbered_from=len(known)
    )
    assert [(s.id, s.passage_id, s.sub_question_id) for s in new] == [
        ("S6", "undo-2", "g1.1"),
        ("S7", "drift-1", "g1.2"),
    ]


# -- durability of rounds: cancel and compensation -----------------------------------------


def test_cancel_during_a_round_deletes_every_rounds_artifacts() -> None:
    held = {k: v for k, v in ROUNDS.items() if k != FACT_CHECKER}
    h = start(depth=2)
    # Let the first pass's fact check through, hold the round's.
    h.run_until_blocked(held)
    h.complete(
        "r1.fact_checker",
        PIPELINE[FACT_CHECKER](next(c.input for c in h.pending if isinstance(c, Child))),
    ).step()
    h.run_until_blocked(held)
    assert [c.instance_id for c in h.pending if isinstance(c, Child)] == ["r1.fact_checker.round1"]
    assert progress(h).stage == "fact_checking" and progress(h).round == 1
    assert progress(h).rounds[0].state == "fact_checking"

    h.raise_event(names.CANCEL_EVENT, {"reason": "enough"}).step()
    h.run_until_blocked(held)
    assert outcome(h).status == "cancelled"
    [stop] = inputs_of(h, names.CANCEL_CHILDREN)
    assert stop["instance_ids"][-4:] == [
        "r1.sources.g1.1",
        "r1.sources.g1.2",
        "r1.analyst.round1",
        "r1.fact_checker.round1",
    ]
    assert deletions(h) == [
        ["report"],
        ["draft"],
        ["claims.round1"],
        ["notes.round1"],
        ["candidates.g1.1", "candidates.g1.2", "sources.g1.1", "sources.g1.2", "sources.round1"],
        ["review.round1"],
        ["claims"],
        ["notes"],
        [
            *(f"candidates.q{i}" for i in (1, 2, 3)),
            *(f"sources.q{i}" for i in (1, 2, 3)),
            "sources",
        ],
        ["plan"],
    ]
    assert h.replay() == h.raw_actions


# -- budget ---------------------------------------------------------------------------------


def spent_tokens(h: WorkflowHarness) -> int:
    result = outcome(h)
    assert result.spend is not None
    return result.spend.tokens


def test_budget_trims_a_round_to_the_gaps_it_can_pay_for_then_writes_the_report() -> None:
    # First pass: 6 calls (720 tokens). Round 1: reviewer (840); a gap's source finder is
    # estimated at 2 calls, and analysis, fact check and writing are held back (3 calls):
    # two gaps need 840 + 480 + 360 = 1680 > 1500, one needs 1440.
    h = start(depth=2, budget={"tokens": 1500})
    assert h.run_until_blocked(ROUNDS) == []

    result = outcome(h)
    assert result.status == "completed"
    assert result.reason is not None
    assert result.reason.startswith("the budget ended the research: round 1 searched 1 of 2 gaps")
    assert "of 1,500 tokens" in result.reason
    [done] = finalized(h).rounds
    assert [g.id for g in done.looked_for] == ["g1.1"]
    assert "r1.sources.g1.2" not in children(h)
    # No second round; the unsearched follow-up is reported as open.
    assert len(inputs_of(h, REVIEWER)) == 1
    assert "Why do timers drift?" in [g.question for g in finalized(h).remaining_gaps]
    assert names.FINALIZE_REPORT in work(h.issued)
    # first pass 6 calls, reviewer, one source finder, analyst, fact checker, writer
    assert spent_tokens(h) == 11 * CALL <= 1500
    final = progress(h)
    assert final.stage == "completed" and final.reason == result.reason
    assert final.spend is not None and final.spend.stopped == result.reason
    assert final.spend.max_tokens == 1500
    assert finalized(h).spend == final.spend
    assert h.replay() == h.raw_actions


def test_budget_trims_the_first_fan_out() -> None:
    h = start(depth=1, budget={"tokens": 800})
    assert h.run_until_blocked(ROUNDS) == []
    assert [c for c in children(h) if ".sources." in c] == ["r1.sources.q1"]
    result = outcome(h)
    assert result.status == "completed"
    assert result.reason is not None and "searched 1 of 3 sub-questions" in result.reason
    assert REVIEWER not in work(h.issued)  # the budget ended the research before round 1
    assert [q.state for q in progress(h).sub_questions] == ["done", "pending", "pending"]
    assert spent_tokens(h) <= 800


def test_a_budget_too_small_for_any_paid_search_searches_one_sub_question_offline() -> None:
    # After planning (120 tokens), one source finder and the report (5 calls, 600) pass 600.
    h = start(depth=1, budget={"tokens": 600})
    assert h.run_until_blocked(ROUNDS) == []
    finders = [
        SourceFinderInput.model_validate(c.input)
        for c in h.issued
        if isinstance(c, Child) and ".sources." in c.instance_id
    ]
    assert [f.sub_question.id for f in finders] == ["q1"]
    assert finders[0].endpoint.offline and finders[0].model == OFFLINE_MODEL
    result = outcome(h)
    assert result.status == "completed"
    assert result.reason is not None and result.reason.startswith(
        "the budget ended the research: searched 1 of 3 sub-questions, on the built-in "
        "offline model, which costs nothing"
    )
    # The offline search spent nothing; the report's steps still fit and ran on the model.
    assert "source_finder" not in progress(h).usage_by_agent
    assert spent_tokens(h) == 4 * CALL <= 600
    assert [q.state for q in progress(h).sub_questions] == ["done", "pending", "pending"]
    assert names.FINALIZE_REPORT in work(h.issued)
    assert h.replay() == h.raw_actions


@pytest.mark.parametrize("limit", range(750, 2000, 50))
def test_a_token_budget_is_never_exceeded_when_each_call_costs_what_calls_cost(
    limit: int,
) -> None:
    h = start(depth=3, budget={"tokens": limit})
    h.run_until_blocked(rounds(**{REVIEWER: review_of(GAPS, GAPS, GAPS)}))
    assert isinstance(h.result, Completed)
    assert spent_tokens(h) <= limit


def test_a_usd_budget_counts_in_the_runs_prices() -> None:
    # $1 per 1M tokens in and out: 120 tokens a call cost $0.00012.
    prices = {"gpt-4o-mini": ModelPrice(input=1.0, output=1.0)}
    cfg = Budget(usd=1500 / 1_000_000, prices=prices)
    h = start(depth=2, budget=cfg.model_dump(mode="json"))
    h.run_until_blocked(ROUNDS)
    result = outcome(h)
    assert result.spend is not None and result.spend.usd is not None
    assert result.spend.usd == pytest.approx(11 * CALL / 1_000_000)
    assert result.reason is not None and "round 1 searched 1 of 2 gaps" in result.reason
    assert "of $0.0015" in result.reason


SPIKE = TokenUsage(prompt_tokens=900, completion_tokens=100, calls=1)


def dear_analyst(raw: Any) -> Any:
    """The analyst's reply, reporting SPIKE: far more than any call before it."""
    answer = analyse_gaps(raw)
    answer["usage"] = SPIKE.model_dump()
    return answer


def ran_offline(h: WorkflowHarness, workflow: str) -> bool:
    [child] = [c for c in h.issued if isinstance(c, Child) and c.name == workflow]
    task = AgentTask.model_validate(child.input)
    return task.endpoint.offline and task.model == OFFLINE_MODEL


def test_overshoot_is_at_most_the_one_step_that_cost_more_than_its_estimate() -> None:
    # Planning and searching cost 480; the analyst is estimated at 120 (the dearest call
    # seen) and fits, then costs 1000: the budget is passed by that one step.
    limit = 1200
    h = start(depth=3, budget={"tokens": limit})
    h.run_until_blocked(rounds(**{ANALYST: dear_analyst}))
    result = outcome(h)
    assert result.status == "completed"
    assert limit < spent_tokens(h) <= limit + SPIKE.total_tokens - CALL
    # Every later step is checked against what is now known: the fact check and the writer
    # run on the offline model, which spends nothing, and no round starts.
    assert spent_tokens(h) == 4 * CALL + SPIKE.total_tokens
    assert ran_offline(h, FACT_CHECKER) and ran_offline(h, WRITER)
    assert not ran_offline(h, ANALYST)
    assert REVIEWER not in work(h.issued)
    assert result.reason is not None
    assert result.reason.startswith(
        "the budget ended the research: the fact check ran on the built-in offline model"
    )
    assert "; then the writing ran on the built-in offline model" in result.reason
    # The offline model's calls are not spend: the usage shows the paid calls only.
    assert set(progress(h).usage_by_agent) == {"planner", "source_finder", "analyst"}


def test_a_round_whose_claims_cannot_be_checked_adds_none() -> None:
    # First pass 720, reviewer 840, one gap searched (estimated 240 + 360 reserved: fits
    # 1500), found, analysed at 1000 (the round analyst's spike): its fact check no longer
    # fits, so its claims are dropped, and the writer runs offline.
    spiky = {"n": 0}

    def analyst_spiking_in_round_one(raw: Any) -> Any:
        spiky["n"] += 1
        return dear_analyst(raw) if spiky["n"] > 1 else analyse_gaps(raw)

    h = start(depth=2, budget={"tokens": 1500})
    h.run_until_blocked(
        rounds(**{REVIEWER: review_of(GAPS[:1]), ANALYST: analyst_spiking_in_round_one})
    )
    [done] = finalized(h).rounds
    assert (done.sources_found, done.claims_added) == (["S6"], [])
    assert done.note == "new claims not fact-checked: budget"
    assert "r1.fact_checker.round1" not in children(h)
    assert [c.claim.id for c in checked_of(finalized(h))] == [f"C{i}" for i in range(1, 6)]
    assert outcome(h).status == "completed"
    assert ran_offline(h, WRITER)


def test_estimates_learn_from_each_agents_calls() -> None:
    usage = {"planner": TokenUsage(prompt_tokens=300, completion_tokens=100, calls=2)}
    assert budget.per_call(usage, "planner") == (150, 50)
    # An agent that has not run yet is estimated at the dearest call seen.
    usage["analyst"] = TokenUsage(prompt_tokens=900, completion_tokens=100, calls=1)
    assert budget.per_call(usage, "writer") == (900, 100)
    assert budget.per_call({}, "writer") == (2000, 500)


def test_outcome_carries_the_spend_only_with_a_budget() -> None:
    h = start(depth=1)
    h.run_until_blocked(ROUNDS)
    assert outcome(h).spend is None and progress(h).spend is None
    assert Outcome.model_validate(outcome(h).model_dump()).status == "completed"
    assert PLANNER in work(h.issued) and QUESTIONS


def test_a_v1_run_in_flight_finishes_on_v1_after_the_upgrade() -> None:
    def v1_only(registry: Registry) -> None:
        register(registry, coordinator_versions={"v1": research_workflow}, latest="v1")

    h = WorkflowHarness(v1_only, names.COORDINATOR, instance_id=TASK)
    h.start(config(depth=2))  # a v1 worker ignores depth: it predates it
    h.run_until_blocked({k: v for k, v in ROUNDS.items() if k != ANALYST})
    assert progress(h).stage == "analysing"

    h.reregister(register)  # the upgraded worker: every version, the latest for new runs
    assert VERSIONS.keys() == {"v1", "v2", "v3", "v4", "v5"} and LATEST == "v5"
    assert h.run_until_blocked(ROUNDS) == []
    assert outcome(h).status == "completed"
    assert REVIEWER not in work(h.issued)

    new = start(depth=2)
    new.run_until_blocked(ROUNDS)
    assert REVIEWER in work(new.issued)


def test_a_v2_run_in_flight_finishes_on_v2_after_the_upgrade_to_v3() -> None:
    def up_to_v2(registry: Registry) -> None:
        register(
            registry,
            coordinator_versions={"v1": research_workflow, "v2": research_workflow_v2},
            latest="v2",
        )

    h = WorkflowHarness(up_to_v2, names.COORDINATOR, instance_id=TASK)
    h.start(config(depth=1))
    h.run_until_blocked({k: v for k, v in ROUNDS.items() if k != WRITER})
    assert progress(h).stage == "writing"
    # v2 sends the writer its claims and gets the draft back.
    [writing] = [c for c in h.pending if isinstance(c, Child) and c.name == WRITER]
    assert not AgentTask.model_validate(writing.input).from_store

    h.reregister(register)
    assert h.run_until_blocked(ROUNDS) == []
    assert outcome(h).status == "completed"
    final = finalized(h)
    assert final.checked_from is None and final.draft_from is None
    assert [c.claim.id for c in final.checked] == [f"C{i}" for i in range(1, 8)]
    assert h.replay() == h.raw_actions


def test_a_v4_run_in_flight_keeps_v4s_source_finders_after_the_upgrade_to_v5() -> None:
    def up_to_v4(registry: Registry) -> None:
        before_v5 = {k: v for k, v in VERSIONS.items() if k != "v5"}
        register(registry, coordinator_versions=before_v5, latest="v4")

    h = WorkflowHarness(up_to_v4, names.COORDINATOR, instance_id=TASK)
    h.start(config(depth=1))
    h.run_until_blocked({k: v for k, v in ROUNDS.items() if k != ANALYST})
    assert progress(h).stage == "analysing"

    h.reregister(register)
    assert h.run_until_blocked(ROUNDS) == []
    assert outcome(h).status == "completed"
    finders = {c.name for c in h.issued if isinstance(c, Child) and ".sources." in c.instance_id}
    # The first pass's and round 1's (started after the upgrade) alike: v4's.
    assert finders == {names.SOURCE_FINDER_PROPOSING}
    assert any(".sources.g1." in c.instance_id for c in h.issued if isinstance(c, Child))
    assert h.replay() == h.raw_actions

    new = start(depth=1)
    new.run_until_blocked(ROUNDS)
    assert {
        c.name for c in new.issued if isinstance(c, Child) and ".sources." in c.instance_id
    } == {names.SOURCE_FINDER_SINGLE}


def checked_of(final: FinalizeInput) -> list[CheckedClaim]:
    """The fact checks finalize reads: named by coordinator v3, sent in full before it."""
    if final.checked_from is None:
        return final.checked
    return stored_inputs.stored_checks(STORED, final.task_id, final.checked_from)


def test_purge_finds_every_round_artifact_from_the_rounds_in_the_report() -> None:
    h = start(depth=1)
    h.run_until_blocked(ROUNDS)
    written = {a["name"] for a in inputs_of(h, names.STORE_ARTIFACT)}
    # Gathering stores a round's sources when it found new ones; source finders may
    # leave their candidates.
    written |= {a["name"] for a in inputs_of(h, GATHER)}
    written |= {
        AgentTask.model_validate(a.input).artifact
        for a in h.issued
        if isinstance(a, Child) and a.name != FINDER
    } | {AgentTask.model_validate(r).artifact for r in inputs_of(h, REVIEWER)}
    written |= {
        f"{kind}.{SourceFinderInput.model_validate(a.input).sub_question.id}"
        for a in h.issued
        if isinstance(a, Child) and a.name == FINDER
        for kind in ("sources", "candidates")
    }
    rounds = [r.model_dump(mode="json") for r in finalized(h).rounds]
    first_pass = set(artifacts.run_artifact_names(["q1", "q2", "q3"]))
    assert set(artifacts.rounds_artifact_names(rounds)) == written - first_pass


def test_a_failing_reviewer_fails_the_run_and_compensates_its_round() -> None:
    def broken(raw: Any) -> Any:
        raise RuntimeError("reviewer model unavailable")

    h = start(depth=1)
    h.run_until_blocked(rounds(**{REVIEWER: broken}))
    assert isinstance(h.result, Failed)
    assert h.result.message == "research run failed at reviewing: reviewer model unavailable"
    assert deletions(h)[2] == ["review.round1"]
    assert WRITER not in " ".join(work(h.issued))
    assert progress(h).stage == "failed"
