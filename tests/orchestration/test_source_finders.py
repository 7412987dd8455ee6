"""The lean source finders, step by step: v2/v3's, v4's (proposal and search in one) and
v5's (proposal, search and judgement in one)."""

from __future__ import annotations

from typing import Any

import pytest

from fte import names
from fte.agents.source_finder import QUERIES, CheckedQueries
from fte.contracts import (
    AgentReply,
    AgentTask,
    CandidatesFound,
    CandidatesInput,
    CandidatesProposed,
    FindSourcesInput,
    JudgeInput,
    ModelEndpoint,
    ProposeAndSearchInput,
    SourceFinderInput,
    SourcesKept,
    SubQuestion,
    TokenUsage,
)
from fte.wiring import register
from tests.support.orchestration import Activity, Completed, WorkflowHarness

QUESTION = SubQuestion(id="q2", text="How does replay stay deterministic?")
PROPOSAL_USAGE = TokenUsage(prompt_tokens=120, completion_tokens=14)
JUDGE_USAGE = TokenUsage(prompt_tokens=900, completion_tokens=30)
RETRIEVED = "2030-01-01T00:00:00+00:00"


def finder_input(**overrides: Any) -> dict[str, Any]:
    return SourceFinderInput(
        task_id="r1",
        sub_question=QUESTION,
        corpus_dir="/corpus",
        endpoint=ModelEndpoint(base_url="http://llm.test/v1"),
        model="small",
        keep=2,
        candidates=6,
        **overrides,
    ).model_dump(mode="json")


def queries(raw: Any) -> Any:
    proposed = CheckedQueries(queries=["replay determinism", "workflow replay"])
    return AgentReply(result=proposed.model_dump(mode="json"), usage=PROPOSAL_USAGE).model_dump(
        mode="json"
    )


def search(raw: Any) -> Any:
    assert CandidatesInput.model_validate(raw).search.queries
    return CandidatesFound(count=4, retrieved_at=RETRIEVED).model_dump(mode="json")


def propose_and_search(raw: Any) -> Any:
    return CandidatesProposed(count=4, retrieved_at=RETRIEVED, usage=PROPOSAL_USAGE).model_dump(
        mode="json"
    )


def judge(raw: Any) -> Any:
    inp = JudgeInput.model_validate(raw)
    return SourcesKept(
        sub_question_id=inp.sub_question.id, kept=2, usage=inp.usage + JUDGE_USAGE
    ).model_dump(mode="json")


def find_sources(raw: Any) -> Any:
    inp = FindSourcesInput.model_validate(raw)
    return SourcesKept(
        sub_question_id=inp.sub_question.id, kept=2, usage=PROPOSAL_USAGE + JUDGE_USAGE
    ).model_dump(mode="json")


RESPONDERS = {
    names.agent_activity(QUERIES.name): queries,
    names.SEARCH_CANDIDATES: search,
    names.PROPOSE_AND_SEARCH: propose_and_search,
    names.JUDGE_CANDIDATES: judge,
    names.FIND_SOURCES: find_sources,
}


def run(workflow: str, **overrides: Any) -> WorkflowHarness:
    h = WorkflowHarness(register, workflow, instance_id="r1.sources.q2")
    h.start(finder_input(**overrides))
    assert h.run_until_blocked(RESPONDERS) == []
    assert h.replay() == h.raw_actions
    return h


def activities(h: WorkflowHarness) -> list[str]:
    return [a.name for a in h.issued if isinstance(a, Activity)]


def inputs(h: WorkflowHarness, name: str) -> list[Any]:
    return [a.input for a in h.issued if isinstance(a, Activity) and a.name == name]


def v3_steps(exclude: list[str]) -> tuple[WorkflowHarness, AgentTask, CandidatesInput]:
    """v2/v3's finder, the reference: its run, the proposal it asked and the search it ran."""
    lean = run(names.SOURCE_FINDER_LEAN, exclude_passage_ids=exclude)
    assert activities(lean) == [
        names.agent_activity(QUERIES.name),
        names.SEARCH_CANDIDATES,
        names.JUDGE_CANDIDATES,
    ]
    [asked] = inputs(lean, names.agent_activity(QUERIES.name))
    [searched] = inputs(lean, names.SEARCH_CANDIDATES)
    return lean, AgentTask.model_validate(asked), CandidatesInput.model_validate(searched)


@pytest.mark.parametrize("exclude", [[], ["p1", "p9"]], ids=["first-pass", "gap-round"])
def test_v4s_finder_asks_and_searches_in_one_activity_what_v3s_asked_in_two(
    exclude: list[str],
) -> None:
    lean, asked, expected = v3_steps(exclude)
    proposing = run(names.SOURCE_FINDER_PROPOSING, exclude_passage_ids=exclude)
    assert activities(proposing) == [names.PROPOSE_AND_SEARCH, names.JUDGE_CANDIDATES]

    [combined] = inputs(proposing, names.PROPOSE_AND_SEARCH)
    combined_input = ProposeAndSearchInput.model_validate(combined)
    # The model is asked the same question, under the same task...
    assert combined_input.proposal == asked
    # ...and the same search runs on what it proposes (filled in by the activity).
    assert combined_input.search == expected.model_copy(
        update={"search": expected.search.model_copy(update={"queries": []})}
    )
    assert combined_input.search.exclude_passage_ids == exclude
    # The judgement, and so what the coordinator learns, is the same.
    assert inputs(proposing, names.JUDGE_CANDIDATES) == inputs(lean, names.JUDGE_CANDIDATES)
    assert isinstance(proposing.result, Completed) and isinstance(lean.result, Completed)
    assert proposing.result.output == lean.result.output
    kept = SourcesKept.model_validate(proposing.result.output)
    assert kept.usage == PROPOSAL_USAGE + JUDGE_USAGE


@pytest.mark.parametrize("exclude", [[], ["p1", "p9"]], ids=["first-pass", "gap-round"])
def test_v5s_finder_hands_its_one_activity_what_v3s_three_were_given(
    exclude: list[str],
) -> None:
    lean, asked, expected = v3_steps(exclude)
    single = run(names.SOURCE_FINDER_SINGLE, exclude_passage_ids=exclude)
    assert activities(single) == [names.FIND_SOURCES]

    [whole] = inputs(single, names.FIND_SOURCES)
    given = FindSourcesInput.model_validate(whole)
    # The same proposal, under the same task...
    assert given.proposal == asked
    # ...the same search, with the same exclusions and as many candidates...
    assert given.search == expected.search.model_copy(update={"queries": []})
    assert given.exclude_passage_ids == expected.exclude_passage_ids == exclude
    assert given.keep_at_most == expected.keep_at_most
    # ...and the same judgement: its question, how many to keep, on the proposal's model.
    [judged] = inputs(lean, names.JUDGE_CANDIDATES)
    judging = JudgeInput.model_validate(judged)
    assert (given.sub_question, given.keep) == (judging.sub_question, judging.keep)
    assert (given.proposal.endpoint, given.proposal.model) == (judging.endpoint, judging.model)
    assert isinstance(single.result, Completed) and isinstance(lean.result, Completed)
    assert single.result.output == lean.result.output
