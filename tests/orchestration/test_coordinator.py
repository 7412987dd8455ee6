"""The research coordinator on the orchestration harness: stage order, fan-out bookkeeping,
the approval gate, cancel and compensation, failures; no sidecar.

The coordinator is registered exactly as a worker registers it (`wiring.register`) and
started by its wire name. The engine's side is played by responders: agent activities
and specialist children answer with `AgentReply` JSON built from each agent's result
model, the I/O activities with their contracts. Each responder re-validates its input
into the contract it expects, so a coordinator that sends a malformed input fails here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from fte import artifacts, names, stored_inputs
from fte.agents import all_agents, analyst, fact_checker, planner, writer
from fte.agents.source_finder import number_new
from fte.contracts import (
    AgentReply,
    AgentTask,
    CancelChildrenInput,
    CheckedClaim,
    CitationIntegrity,
    Claim,
    DeleteInput,
    FinalizeInput,
    FinalizeResult,
    Gathered,
    GatherInput,
    Notice,
    Outcome,
    Passage,
    Progress,
    RunConfig,
    SourceFinderInput,
    SourceFinderResult,
    SourcesKept,
    StoreInput,
    SubQuestion,
    TokenUsage,
)
from fte.wiring import register
from tests.support.orchestration import (
    START,
    Action,
    Activity,
    Child,
    Completed,
    Failed,
    Responder,
    Timer,
    WorkflowHarness,
)

TASK = "r1"
CORPUS = "/corpus"
QUESTIONS = [
    "How do durable timers fire after a restart?",
    "How do retry policies space out attempts?",
    "How does compensation undo partial work?",
]
# Passages each source finder keeps; "shared" is found for q2 and for q3.
FOUND = {
    "q1": ["timers-1", "timers-2"],
    "q2": ["retries-1", "shared"],
    "q3": ["shared", "undo-1"],
}
USAGE = TokenUsage(prompt_tokens=100, completion_tokens=20, calls=1)
RETRIEVED = "2030-01-01T00:00:00+00:00"
HOUR = 3600.0

PLANNER = names.agent_activity(planner.AGENT.name)
ANALYST = names.specialist_workflow(analyst.AGENT.name)
FACT_CHECKER = names.specialist_workflow(fact_checker.AGENT.name)
WRITER = names.specialist_workflow(writer.AGENT.name)
SOURCE_FINDERS = ["r1.sources.q1", "r1.sources.q2", "r1.sources.q3"]
# The latest coordinator's source finder keeps passages in the state store; an activity
# numbers what the source finders kept.
FINDER = names.SOURCE_FINDER_SINGLE
GATHER = names.GATHER_SOURCES
SPECIALISTS = ["r1.analyst", "r1.fact_checker", "r1.writer"]
# Compensation deletes artifacts stage by stage, last stage first.
DELETED_IN_ORDER = [
    ["report"],
    ["draft"],
    ["claims"],
    ["notes"],
    [
        *(f"candidates.q{i}" for i in (1, 2, 3)),
        *(f"sources.q{i}" for i in (1, 2, 3)),
        "sources",
    ],
    ["plan"],
]


# -- the engine's side: what activities and children answer ---------------------------


def reply(result: BaseModel) -> dict[str, Any]:
    return AgentReply(result=result.model_dump(mode="json"), usage=USAGE).model_dump(mode="json")


class ScriptedArtifacts:
    """What this test's scripted activities wrote, by artifact name.

    The harness plays the engine and the responders play the activities; the real
    activities write artifacts that later agents read (coordinator v3 sends agents artifact
    names, not claims and passages), so the scripted ones keep what they would have
    written and `as_the_activity_runs` reads it back through `fte.stored_inputs`, as the
    real agent activity does. Emptied before every test (conftest.py).
    """

    def __init__(self) -> None:
        self.documents: dict[str, Any] = {}

    def get_many(self, task_id: str, names: Sequence[str]) -> list[Any | None]:
        return [self.documents.get(name) for name in names]


STORED = ScriptedArtifacts()


def as_the_activity_runs(answer: Responder) -> Responder:
    """An agent responder run as `fte.activities.agent_activity` runs an agent: its input
    completed from what was stored, its result stored as its artifact, and left out of
    the reply when the task asks so."""

    def run(raw: Any) -> Any:
        task = AgentTask.model_validate(raw)
        if task.from_store or task.sources_from is not None:
            task = task.model_copy(update={"inputs": stored_inputs.complete(STORED, task)})
        answered = answer(task.model_dump(mode="json"))
        result = AgentReply.model_validate(answered).result
        if task.artifact is not None:
            STORED.documents[task.artifact] = result
        if task.reply == "usage":
            return {**answered, "result": {}}
        if task.reply == "brief":
            agent = all_agents()[task.agent]
            return {**answered, "result": agent.brief_of(result)}
        return answered

    return run


def passage(passage_id: str) -> Passage:
    return Passage(
        passage_id=passage_id,
        title=f"Doc {passage_id}",
        location=f"{CORPUS}/{passage_id}.md",
        text=f"Passage {passage_id} states a fact.",
    )


def plan_of(texts: list[str]) -> Responder:
    def answer(raw: Any) -> Any:
        task = AgentTask.model_validate(raw)
        planner.PlannerInput.model_validate(task.inputs)
        return reply(planner.Plan(sub_questions=SubQuestion.numbered(texts), rationale="scripted"))

    return answer


def sources_from(found: Mapping[str, list[str]]) -> Responder:
    """A source finder that keeps `found[<sub-question>]` (stored, so it returns a count)."""

    def answer(raw: Any) -> Any:
        inp = SourceFinderInput.model_validate(raw)
        return SourcesKept(
            sub_question_id=inp.sub_question.id,
            kept=len(found.get(inp.sub_question.id, [])),
            usage=USAGE,
        ).model_dump(mode="json")

    return answer


def classic_sources_from(found: Mapping[str, list[str]]) -> Responder:
    """Coordinator v1's source finder, which returns the passages it keeps."""

    def answer(raw: Any) -> Any:
        inp = SourceFinderInput.model_validate(raw)
        return SourceFinderResult(
            sub_question_id=inp.sub_question.id,
            passages=[passage(p) for p in found.get(inp.sub_question.id, [])],
            retrieved_at=RETRIEVED,
            usage=USAGE,
        ).model_dump(mode="json")

    return answer


def gather_from(found: Mapping[str, list[str]]) -> Responder:
    """The gathering activity over what `sources_from(found)` kept, numbered as it numbers."""

    def answer(raw: Any) -> Any:
        inp = GatherInput.model_validate(raw)
        results = []
        for name in inp.found:
            sub_question = name.removeprefix("sources.")
            passages = [passage(p) for p in found.get(sub_question, [])]
            results.append(
                SourceFinderResult(
                    sub_question_id=sub_question,
                    passages=passages,
                    retrieved_at=RETRIEVED,
                    usage=USAGE,
                )
            )
        new = number_new(
            results,
            known_passage_ids=set(inp.known_passage_ids),
            numbered_from=inp.numbered_from,
        )
        if new:
            STORED.documents[inp.name] = {"sources": [s.model_dump(mode="json") for s in new]}
        return Gathered(sources=[s.model_copy(update={"text": ""}) for s in new]).model_dump(
            mode="json"
        )

    return answer


def finding(found: Mapping[str, list[str]]) -> dict[str, Responder]:
    """Source finders and the gathering activity, over the same passages (v1's too)."""
    return {
        FINDER: sources_from(found),
        GATHER: gather_from(found),
        names.SOURCE_FINDER_PROPOSING: sources_from(found),  # v4's
        names.SOURCE_FINDER_LEAN: sources_from(found),  # v2's and v3's
        names.SOURCE_FINDER: classic_sources_from(found),
    }


@as_the_activity_runs
def analyse(raw: Any) -> Any:
    """One claim per source, citing it."""
    inputs = analyst.AnalystInput.model_validate(AgentTask.model_validate(raw).inputs)
    claims = [
        Claim(id=f"C{i}", text=f"Claim from {s.id}.", source_ids=[s.id])
        for i, s in enumerate(inputs.sources, 1)
    ]
    return reply(analyst.Analysis(claims=claims, summary="scripted"))


@as_the_activity_runs
def fact_check(raw: Any) -> Any:
    """Every claim supported by its first cited source."""
    inputs = fact_checker.FactCheckInput.model_validate(AgentTask.model_validate(raw).inputs)
    checked = [
        CheckedClaim(
            claim=Claim(id=c.id, text=c.text, source_ids=[s.id for s in c.cited_sources]),
            verdict="supported",
            evidence=c.text,
            evidence_source_id=c.cited_sources[0].id,
        )
        for c in inputs.claims
    ]
    return reply(fact_checker.FactCheck(checked=checked))


@as_the_activity_runs
def write(raw: Any) -> Any:
    inputs = writer.WriterInput.model_validate(AgentTask.model_validate(raw).inputs)
    paragraphs = [
        writer.ReportParagraph(
            text=f"Finding {c.claim.id}.", claim_ids=[c.claim.id], source_ids=c.claim.source_ids
        )
        for c in inputs.claims
    ]
    return reply(
        writer.WriterOutput(
            title="Scripted report",
            summary="Scripted.",
            sections=[writer.ReportSection(heading="Findings", paragraphs=paragraphs)],
        )
    )


def finalize(raw: Any) -> Any:
    inp = FinalizeInput.model_validate(raw)
    # v2 names the sources' artifacts instead of sending the sources; v1 sends them.
    assert (inp.sources == []) == (inp.sources_from is not None)
    # v3 names the fact checks' and the draft's artifacts too, and sends neither.
    assert (inp.checked == []) == (inp.checked_from is not None)
    assert (inp.draft == {}) == (inp.draft_from is not None)
    checked = inp.checked
    if inp.checked_from is not None:
        checked = stored_inputs.stored_checks(STORED, inp.task_id, inp.checked_from)
    if inp.draft_from is not None:
        (draft,) = STORED.get_many(inp.task_id, [inp.draft_from])
        writer.WriterOutput.model_validate(draft)
    integrity = CitationIntegrity(policy=inp.policy, citations_checked=len(checked))
    report_key = artifacts.artifact_key(inp.task_id, artifacts.REPORT)
    return FinalizeResult(report_key=report_key, integrity=integrity).model_dump(mode="json")


def store(raw: Any) -> Any:
    inp = StoreInput.model_validate(raw)
    STORED.documents[inp.name] = inp.document
    return artifacts.artifact_key(inp.task_id, inp.name)


def delete(raw: Any) -> Any:
    inp = DeleteInput.model_validate(raw)
    return [artifacts.artifact_key(inp.task_id, name) for name in inp.names]


def cancel_children(raw: Any) -> Any:
    return CancelChildrenInput.model_validate(raw).instance_ids


def notify(raw: Any) -> None:
    Notice.model_validate(raw)


PIPELINE: dict[str, Responder] = {
    PLANNER: plan_of(QUESTIONS),
    **finding(FOUND),
    ANALYST: analyse,
    FACT_CHECKER: fact_check,
    WRITER: write,
    names.FINALIZE_REPORT: finalize,
    names.STORE_ARTIFACT: store,
    names.NOTIFY: notify,
    names.DELETE_ARTIFACTS: delete,
    names.CANCEL_CHILDREN: cancel_children,
}


def pipeline(**overrides: Responder) -> dict[str, Responder]:
    """PIPELINE with some responders replaced; keys are wire names with dots, so pass **{...}."""
    return {**PIPELINE, **overrides}


def without(name: str) -> dict[str, Responder]:
    """PIPELINE minus one responder: that task stays pending, as if still running."""
    return {key: answer for key, answer in PIPELINE.items() if key != name}


# -- driving and reading the run ---------------------------------------------------------


def config(**overrides: Any) -> dict[str, Any]:
    query = "How do durable workflows stay reliable?"
    return RunConfig(query=query, corpus_dir=CORPUS, **overrides).model_dump(mode="json")


def start(**overrides: Any) -> WorkflowHarness:
    h = WorkflowHarness(register, names.COORDINATOR, instance_id=TASK)
    h.start(config(**overrides))
    return h


def progress(h: WorkflowHarness) -> Progress:
    assert h.custom_status is not None
    return Progress.model_validate_json(h.custom_status)


def work(actions: Iterable[Action]) -> list[str]:
    """Activities by name and children as `name instance`, in issue order; timers left out."""
    return [
        f"{a.name} {a.instance_id}" if isinstance(a, Child) else a.name
        for a in actions
        if isinstance(a, Activity | Child)
    ]


def notices(h: WorkflowHarness) -> list[Notice]:
    return [
        Notice.model_validate(a.input)
        for a in h.issued
        if isinstance(a, Activity) and a.name == names.NOTIFY
    ]


def inputs_of(h: WorkflowHarness, name: str) -> list[Any]:
    return [a.input for a in h.issued if isinstance(a, Activity) and a.name == name]


def deletions(h: WorkflowHarness) -> list[list[str]]:
    """The artifact names of each delete, in the order compensation issued them."""
    return [DeleteInput.model_validate(d).names for d in inputs_of(h, names.DELETE_ARTIFACTS)]


def outcome(h: WorkflowHarness) -> Outcome:
    assert isinstance(h.result, Completed), h.result
    return Outcome.model_validate(h.result.output)


def usage(calls: int) -> TokenUsage:
    """What `calls` agent replies cost, each USAGE."""
    return TokenUsage(
        prompt_tokens=USAGE.prompt_tokens * calls,
        completion_tokens=USAGE.completion_tokens * calls,
        calls=calls,
    )


def at_gate(**overrides: Any) -> WorkflowHarness:
    """A run with require_approval that has asked for approval and waits for it."""
    h = start(require_approval=True, **overrides)
    assert work(h.run_until_blocked(without(names.NOTIFY))) == [names.NOTIFY]
    assert notices(h)[-1].kind == "approval_request"
    h.complete(names.NOTIFY).step()
    assert progress(h).stage == "awaiting_approval"
    assert h.replay() == h.raw_actions
    return h


# -- the happy path ----------------------------------------------------------------------


def test_stages_and_children_run_in_pipeline_order() -> None:
    with structlog.testing.capture_logs() as logs:
        h = start()
        assert h.run_until_blocked(PIPELINE) == []

    assert work(h.issued) == [
        PLANNER,
        *(f"{FINDER} {child}" for child in SOURCE_FINDERS),
        GATHER,
        f"{ANALYST} r1.analyst",
        f"{FACT_CHECKER} r1.fact_checker",
        f"{WRITER} r1.writer",
        names.FINALIZE_REPORT,
    ]
    # Each stage is logged once although every step replays the ones before it.
    assert [e["stage"] for e in logs if e["event"] == "stage"] == [
        "planning",
        "finding_sources",
        "analysing",
        "fact_checking",
        "writing",
        "finalizing",
        "completed",
    ]
    assert outcome(h) == Outcome(
        task_id=TASK,
        status="completed",
        report_key="artifact:r1:report",
        usage=usage(7),  # planner, 3 source finders, analyst, fact checker, writer
        integrity=CitationIntegrity(policy="remove", citations_checked=5),
    )
    final = progress(h)
    assert final.stage == "completed" and final.claims == 5 and final.sources_found == 5
    assert final.usage_by_agent == {
        "planner": usage(1),
        "source_finder": usage(3),
        "analyst": usage(1),
        "fact_checker": usage(1),
        "writer": usage(1),
    }
    assert notices(h) == []  # nobody is bothered on a run that needs no approval
    assert h.replay() == h.raw_actions


def test_agents_get_the_run_configuration() -> None:
    h = start(
        max_sub_questions=5,
        sources_per_question=2,
        search_candidates=9,
        models={"planner": "big", "source_finder": "small", "writer": "fancy"},
    )
    h.run_until_blocked(PIPELINE)
    planned = AgentTask.model_validate(inputs_of(h, PLANNER)[0])
    assert (planned.task_id, planned.model, planned.artifact) == (TASK, "big", "plan")
    assert planned.inputs == {
        "query": "How do durable workflows stay reliable?",
        "max_sub_questions": 5,
    }
    finders = [
        SourceFinderInput.model_validate(a.input)
        for a in h.issued
        if isinstance(a, Child) and a.name == FINDER
    ]
    assert [
        (f.task_id, f.sub_question, f.corpus_dir, f.model, f.keep, f.candidates) for f in finders
    ] == [
        (TASK, SubQuestion(id=f"q{i}", text=text), CORPUS, "small", 2, 9)
        for i, text in enumerate(QUESTIONS, 1)
    ]
    [writer_child] = [a for a in h.issued if isinstance(a, Child) and a.name == WRITER]
    task = AgentTask.model_validate(writer_child.input)
    assert (task.model, task.artifact) == ("fancy", "draft")


# -- fan-out bookkeeping -----------------------------------------------------------------


def test_source_finders_report_progress_as_each_finishes_out_of_order() -> None:
    h = start()
    h.run_until_blocked(without(FINDER))
    assert [c.instance_id for c in h.pending if isinstance(c, Child)] == SOURCE_FINDERS
    assert progress(h).stage == "finding_sources"

    def states() -> list[tuple[str, str, int]]:
        return [(q.id, q.state, q.sources) for q in progress(h).sub_questions]

    assert states() == [("q1", "searching", 0), ("q2", "searching", 0), ("q3", "searching", 0)]
    answer = PIPELINE[FINDER]
    inputs = {c.instance_id: c.input for c in h.pending if isinstance(c, Child)}

    h.complete("r1.sources.q3", answer(inputs["r1.sources.q3"])).step()
    assert states() == [("q1", "searching", 0), ("q2", "searching", 0), ("q3", "done", 2)]
    assert progress(h).usage_by_agent["source_finder"] == usage(1)
    assert h.replay() == h.raw_actions

    h.complete("r1.sources.q1", answer(inputs["r1.sources.q1"])).step()
    assert states() == [("q1", "done", 2), ("q2", "searching", 0), ("q3", "done", 2)]
    assert work(h.actions) == []  # still waiting for q2
    assert progress(h).sources_found == 4

    h.complete("r1.sources.q2", answer(inputs["r1.sources.q2"])).step()
    assert states() == [("q1", "done", 2), ("q2", "done", 2), ("q3", "done", 2)]
    assert work(h.actions) == [GATHER]
    assert h.replay() == h.raw_actions
    assert progress(h).sources_found == 6  # as each finished; gathering counts them once

    # IDs follow sub-question order, not finishing order (q3 finished first).
    [gather] = inputs_of(h, GATHER)
    assert GatherInput.model_validate(gather) == GatherInput(
        task_id=TASK, found=[f"sources.q{i}" for i in (1, 2, 3)], name="sources"
    )
    h.complete(GATHER, gather_from(FOUND)(gather)).step()
    # The passage found for q2 and q3 is one source, counted once.
    assert progress(h).sources_found == 5
    # The duplicate belongs to the first sub-question that found it (`number_new`).
    sources = Gathered.model_validate(gather_from(FOUND)(gather)).model_dump()["sources"]
    assert [(s["id"], s["passage_id"], s["sub_question_id"]) for s in sources] == [
        ("S1", "timers-1", "q1"),
        ("S2", "timers-2", "q1"),
        ("S3", "retries-1", "q2"),
        ("S4", "shared", "q2"),
        ("S5", "undo-1", "q3"),
    ]
    assert all(s["retrieved_at"] == RETRIEVED for s in sources)


def test_analyst_sees_the_consolidated_sources() -> None:
    h = start()
    h.run_until_blocked(without(ANALYST))
    [child] = [t for t in h.pending if isinstance(t, Child)]
    task = AgentTask.model_validate(child.input)
    # No source travels through history: the activity quotes every one in the artifact.
    assert task.from_store and task.sources_from == ["sources"]
    assert analyst.AnalystInput.model_validate(task.inputs).sources == []
    inputs = analyst.AnalystInput.model_validate(stored_inputs.complete(STORED, task))
    assert [s.id for s in inputs.sources] == ["S1", "S2", "S3", "S4", "S5"]
    assert inputs.sources[0].text == "Passage timers-1 states a fact."
    assert [q.id for q in inputs.sub_questions] == ["q1", "q2", "q3"]


def test_progress_checkin_while_a_stage_runs_long() -> None:
    h = start(progress_checkin_interval_s=60)
    h.run_until_blocked(without(ANALYST))
    assert progress(h).stage == "analysing"
    # One check-in timer serves every wait until it fires: the one set when planning began.
    [timer] = [t for t in h.pending if isinstance(t, Timer) and t.origin == "createTimer"]
    assert timer.fire_at == START + timedelta(seconds=60)
    assert work(h.fire().step()) == [names.NOTIFY]
    assert progress(h).checkins == 1
    [checkin] = [n for n in notices(h) if n.kind == "progress_checkin"]
    assert checkin.data == {"stage": "analysing", "tokens": usage(4).total_tokens}
    h.complete(names.NOTIFY).step()
    # The next interval starts with the next wait.
    assert work(h.advance(timedelta(minutes=1)).step()) == [names.NOTIFY]
    assert progress(h).checkins == 2
    h.complete(names.NOTIFY).step()
    assert h.run_until_blocked(PIPELINE) == []
    assert outcome(h).status == "completed"


def test_a_run_with_no_long_stage_sets_one_checkin_timer() -> None:
    # Before coordinator v3 every wait set its own (one per finished source finder, too):
    # each is a reminder the scheduler creates and later deletes.
    h = start(progress_checkin_interval_s=60)
    assert h.run_until_blocked(PIPELINE) == []
    assert outcome(h).status == "completed"
    timers = [t for t in h.issued if isinstance(t, Timer) and t.origin == "createTimer"]
    assert timers == [Timer(START + timedelta(seconds=60))]


# -- the approval gate ---------------------------------------------------------------------


def test_nothing_is_searched_before_the_plan_is_approved() -> None:
    h = at_gate(approval_timeout_s=HOUR)
    [request] = notices(h)
    assert request.data == {
        "sub_questions": QUESTIONS,
        "deadline": "2030-01-01T01:00:00+00:00",
    }
    assert "fte approve r1" in request.message
    assert work(h.pending) == []
    assert Timer(None, "externalEvent", names.APPROVAL_EVENT) in h.issued

    h.raise_event(names.APPROVAL_EVENT, {"approved": True, "comment": "go"}).step()
    assert work(h.actions) == [f"{FINDER} {child}" for child in SOURCE_FINDERS]
    assert h.replay() == h.raw_actions
    assert h.run_until_blocked(PIPELINE) == []
    assert outcome(h).status == "completed"


def test_approval_with_edited_sub_questions_stores_the_edited_plan() -> None:
    h = at_gate()
    edited = ["What is a durable timer?", "  ", "Who retries?", "Why compensate?", "Who pays?"]
    h.raise_event(
        names.APPROVAL_EVENT, {"approved": True, "comment": "sharper", "sub_questions": edited}
    ).step()

    assert work(h.actions) == [names.STORE_ARTIFACT]
    [stored] = inputs_of(h, names.STORE_ARTIFACT)
    plan = planner.Plan.model_validate(stored["document"])
    assert stored["name"] == "plan"
    kept = ["What is a durable timer?", "Who retries?", "Why compensate?", "Who pays?"]
    assert plan.sub_questions == SubQuestion.numbered(kept)
    assert plan.rationale == "scripted\n\nEdited by reviewer: sharper"
    assert [(q.id, q.text) for q in progress(h).sub_questions] == [
        (f"q{i}", text) for i, text in enumerate(kept, 1)
    ]

    h.complete(names.STORE_ARTIFACT, "artifact:r1:plan").step()
    finders = [c for c in h.actions if isinstance(c, Child)]
    assert [c.instance_id for c in finders] == [f"r1.sources.q{i}" for i in range(1, 5)]
    assert [SourceFinderInput.model_validate(c.input).sub_question.text for c in finders] == kept
    assert h.replay() == h.raw_actions


def test_edited_sub_questions_are_what_compensation_deletes() -> None:
    h = at_gate()
    edited = ["One?", "Two?", "Three?", "Four?"]
    h.raise_event(names.APPROVAL_EVENT, {"approved": True, "sub_questions": edited}).step()
    h.run_until_blocked(without(ANALYST))
    h.raise_event(names.CANCEL_EVENT).step()
    h.run_until_blocked(without(ANALYST))
    assert deletions(h)[4] == [
        *(f"candidates.q{i}" for i in range(1, 5)),
        *(f"sources.q{i}" for i in range(1, 5)),
        "sources",
    ]
    assert outcome(h).reason == "cancelled by user"


def test_rejected_plan_ends_the_run_and_deletes_what_it_may_have_written() -> None:
    h = at_gate()
    h.raise_event(names.APPROVAL_EVENT, {"approved": False, "comment": "too broad"}).step()
    assert progress(h).stage == "compensating"
    assert h.replay() == h.raw_actions
    assert h.run_until_blocked(PIPELINE) == []

    assert FINDER not in work(h.issued)
    assert names.CANCEL_CHILDREN not in work(h.issued)  # there are no children to stop
    assert deletions(h) == DELETED_IN_ORDER
    rejected = Outcome(task_id=TASK, status="rejected", reason="too broad", usage=usage(1))
    assert outcome(h) == rejected
    assert [n.kind for n in notices(h)] == ["approval_request", "outcome"]
    assert notices(h)[-1].message == "rejected: too broad"
    assert progress(h).stage == "rejected"


def test_malformed_approval_is_reported_and_ignored() -> None:
    h = at_gate()
    h.raise_event(names.APPROVAL_EVENT, {"approved": "maybe"}).step()
    assert work(h.actions) == [names.NOTIFY]
    ignored = notices(h)[-1]
    assert ignored.kind == "approval_reminder"
    assert ignored.message.startswith("Ignored an invalid approval")
    h.complete(names.NOTIFY).step()
    assert progress(h).stage == "awaiting_approval"
    assert h.replay() == h.raw_actions

    h.raise_event(names.APPROVAL_EVENT, {"approved": True}).step()
    assert work(h.actions) == [f"{FINDER} {child}" for child in SOURCE_FINDERS]
    assert progress(h).checkins == 0  # an invalid answer is no reminder


def test_reminders_until_the_deadline_then_rejected() -> None:
    h = at_gate(
        approval_timeout_s=1500,
        approval_reminder_interval_s=600,
        progress_checkin_interval_s=24 * HOUR,  # the planning stage's check-in stays out of the way
    )
    assert Timer(START + timedelta(seconds=600)) in h.pending
    for reminder_at, next_timer_at in ((600, 1200), (1200, 1500)):
        assert work(h.fire().step()) == [names.NOTIFY]
        assert h.now == START + timedelta(seconds=reminder_at)
        assert notices(h)[-1].message == (
            "Still waiting for approval of r1 (deadline 2030-01-01T00:25:00+00:00)"
        )
        # The last wait ends at the deadline, not a full interval later.
        assert h.complete(names.NOTIFY).step() == [Timer(START + timedelta(seconds=next_timer_at))]
    assert h.replay() == h.raw_actions

    h.fire().step()
    assert progress(h).stage == "compensating"
    assert h.run_until_blocked(PIPELINE) == []
    assert outcome(h).status == "rejected"
    assert outcome(h).reason == "no approval within 1500s (deadline 2030-01-01T00:25:00+00:00)"
    assert progress(h).checkins == 2
    assert [n.kind for n in notices(h)] == [
        "approval_request",
        "approval_reminder",
        "approval_reminder",
        "outcome",
    ]
    assert deletions(h) == DELETED_IN_ORDER


def test_timeout_can_auto_approve() -> None:
    h = at_gate(
        approval_timeout_s=900,
        approval_reminder_interval_s=HOUR,
        auto_approve_on_timeout=True,
        progress_checkin_interval_s=24 * HOUR,
    )
    assert work(h.fire().step()) == [names.NOTIFY]
    assert h.now == START + timedelta(seconds=900)
    assert notices(h)[-1].message == "No answer: plan auto-approved"
    assert work(h.complete(names.NOTIFY).step()) == [
        f"{FINDER} {child}" for child in SOURCE_FINDERS
    ]
    assert h.run_until_blocked(PIPELINE) == []
    assert outcome(h).status == "completed"


def test_cancel_at_the_gate() -> None:
    h = at_gate()
    h.raise_event(names.CANCEL_EVENT, {"reason": "wrong question"}).step()
    h.run_until_blocked(PIPELINE)
    assert outcome(h).status == "cancelled"
    assert outcome(h).reason == "cancelled: wrong question"


# -- cancel, failure, compensation --------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "stage", "children", "deleted"),
    [
        pytest.param(
            PLANNER,
            "planning",
            [],
            # No plan yet, so no sub-question's artifact to name.
            [["report"], ["draft"], ["claims"], ["notes"], ["sources"], ["plan"]],
            id="planning",
        ),
        pytest.param(FINDER, "finding_sources", SOURCE_FINDERS, DELETED_IN_ORDER, id="sources"),
        pytest.param(
            ANALYST, "analysing", [*SOURCE_FINDERS, "r1.analyst"], DELETED_IN_ORDER, id="analysing"
        ),
        pytest.param(
            WRITER, "writing", SOURCE_FINDERS + SPECIALISTS, DELETED_IN_ORDER, id="writing"
        ),
        pytest.param(
            names.FINALIZE_REPORT,
            "finalizing",
            SOURCE_FINDERS + SPECIALISTS,
            DELETED_IN_ORDER,
            id="finalizing",
        ),
    ],
)
def test_cancel_during_a_stage_stops_children_then_deletes_artifacts_in_reverse(
    held: str, stage: str, children: list[str], deleted: list[list[str]]
) -> None:
    h = start()
    h.run_until_blocked(without(held))
    assert progress(h).stage == stage
    before = len(h.issued)

    h.raise_event(names.CANCEL_EVENT, {"reason": "changed my mind"}).step()
    assert progress(h).stage == "compensating"
    assert h.replay() == h.raw_actions
    assert h.run_until_blocked(without(held)) == []

    after = [a for a in h.issued[before:] if isinstance(a, Activity)]
    stops = [a.input for a in after if a.name == names.CANCEL_CHILDREN]
    assert stops == ([{"instance_ids": children}] if children else [])
    assert [a.name for a in after] == [
        *([names.CANCEL_CHILDREN] if children else []),
        *[names.DELETE_ARTIFACTS] * 6,
        names.NOTIFY,
    ]
    assert [DeleteInput.model_validate(a.input).names for a in after[len(stops) : -1]] == deleted
    assert all(a.input["task_id"] == TASK for a in after[len(stops) : -1])
    result = outcome(h)
    assert (result.status, result.reason) == ("cancelled", "cancelled: changed my mind")
    assert result.report_key is None
    assert progress(h).stage == "cancelled"
    assert notices(h)[-1].data == {"status": "cancelled"}


def test_failing_analyst_is_compensated_then_the_run_fails() -> None:
    def broken(raw: Any) -> Any:
        raise RuntimeError("model unavailable")

    h = start()
    h.run_until_blocked(pipeline(**{ANALYST: broken}))

    assert isinstance(h.result, Failed), h.result
    assert h.result.error_type == "RuntimeError"
    assert h.result.message == "research run failed at analysing: model unavailable"
    assert "model unavailable" in h.result.message
    assert work(h.issued)[-8:] == [
        names.CANCEL_CHILDREN,
        *[names.DELETE_ARTIFACTS] * 6,
        names.NOTIFY,
    ]
    [stop] = inputs_of(h, names.CANCEL_CHILDREN)
    assert stop == {"instance_ids": [*SOURCE_FINDERS, "r1.analyst"]}
    assert deletions(h) == DELETED_IN_ORDER
    assert f"{FACT_CHECKER} r1.fact_checker" not in work(h.issued)
    final = progress(h)
    assert final.stage == "failed"
    assert final.reason is not None and final.reason.startswith("analysing: ")
    assert notices(h)[-1].data == {"status": "failed"}
    assert h.replay() == h.raw_actions


def test_no_sources_fails_the_run_with_its_reason() -> None:
    h = start()
    h.run_until_blocked(pipeline(**finding({})))

    reason = "no relevant source found in /corpus for any sub-question"
    assert h.result == Failed("RuntimeError", f"research run failed at finding_sources: {reason}")
    assert progress(h).reason == reason
    assert [q.state for q in progress(h).sub_questions] == ["done"] * 3
    assert names.STORE_ARTIFACT not in work(h.issued)
    assert inputs_of(h, GATHER)[0]["name"] == "sources"  # it stores nothing when none
    assert inputs_of(h, names.CANCEL_CHILDREN) == [{"instance_ids": SOURCE_FINDERS}]
    assert notices(h)[-1].message == f"failed: {reason}"


def test_analysis_without_claims_fails_the_run() -> None:
    def nothing(raw: Any) -> Any:
        return reply(analyst.Analysis(claims=[], summary="no claims"))

    h = start()
    h.run_until_blocked(pipeline(**{ANALYST: nothing}))
    assert isinstance(h.result, Failed)
    assert progress(h).reason == "the analyst extracted no claim backed by a retrieved source"
