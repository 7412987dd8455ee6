"""Specialist child workflows: the source finder, and one workflow type per specialist agent.

Each is its own workflow instance (`<task>.<role>`), so its activities, retries and
result are visible on their own in the engine, and the coordinator can terminate it.
"""

from __future__ import annotations

from typing import Any

import dapr.ext.workflow as wf

from fte import artifacts, names
from fte.agents.source_finder import QUERIES, RELEVANCE, QueriesInput, RelevanceInput
from fte.contracts import (
    AgentReply,
    AgentTask,
    CandidatesFound,
    CandidatesInput,
    CandidatesProposed,
    FindSourcesInput,
    JudgeInput,
    ProposeAndSearchInput,
    SearchInput,
    SearchResult,
    SourceFinderInput,
    SourceFinderResult,
    SourcesKept,
    StoreInput,
    TokenUsage,
)
from fte.coordinator.run import Flow, agent_task, ask
from fte.retry_policies import IO_RETRY, LLM_RETRY


def _proposal(inp: SourceFinderInput) -> AgentTask:
    """The query proposal that opens every source finder (v4's in the same activity as its
    search), so the model is asked the same whichever version runs."""
    return agent_task(
        inp.task_id,
        QUERIES,
        endpoint=inp.endpoint,
        model=inp.model,
        inputs=QueriesInput(sub_question=inp.sub_question.text),
    )


def _ask_queries(ctx: wf.DaprWorkflowContext, inp: SourceFinderInput) -> Any:
    """Schedule the query proposal on its own (v1's to v3's source finders)."""
    return ctx.call_activity(
        names.agent_activity(QUERIES.name), input=_proposal(inp), retry_policy=LLM_RETRY
    )


def _search_input(inp: SourceFinderInput, queries: list[str]) -> SearchInput:
    """The corpus search both source finders run for the proposed queries."""
    return SearchInput(
        corpus_dir=inp.corpus_dir,
        queries=queries,
        # A gap round looks past what the run has: as many candidates as the first pass
        # had, after the passages it already holds.
        limit=inp.candidates + len(inp.exclude_passage_ids),
        sources=inp.sources,
        task_id=inp.task_id,
    )


def source_finder_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Propose search queries (LLM), search the corpus, keep the relevant passages (LLM)."""
    inp = SourceFinderInput.model_validate(raw)
    question = inp.sub_question
    queries, usage = QUERIES.reply((yield _ask_queries(ctx, inp)))
    found = SearchResult.model_validate(
        (
            yield ctx.call_activity(
                names.SEARCH_SOURCES,
                input=_search_input(inp, queries.queries),
                retry_policy=IO_RETRY,
            )
        )
    )
    if inp.exclude_passage_ids:
        known = set(inp.exclude_passage_ids)
        fresh = [p for p in found.passages if p.passage_id not in known][: inp.candidates]
        found = found.model_copy(update={"passages": fresh})
    kept = []
    if found.passages:  # nothing to judge, nothing to pay for
        judged, judge_usage = RELEVANCE.reply(
            (
                yield ask(
                    ctx,
                    inp.task_id,
                    RELEVANCE,
                    endpoint=inp.endpoint,
                    model=inp.model,
                    inputs=RelevanceInput.of(question.text, found.passages, inp.keep),
                )
            )
        )
        usage += judge_usage
        by_id = {p.passage_id: p for p in found.passages}
        kept = [by_id[passage_id] for passage_id in judged.relevant_passage_ids]
    result = SourceFinderResult(
        sub_question_id=question.id,
        passages=kept,
        retrieved_at=found.retrieved_at,
        usage=usage,
    )
    yield ctx.call_activity(
        names.STORE_ARTIFACT,
        input=StoreInput(
            task_id=inp.task_id,
            name=artifacts.sources_for(question.id),
            document=result.model_dump(mode="json"),
        ),
        retry_policy=IO_RETRY,
    )
    return result.model_dump(mode="json")


def lean_source_finder_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """The source finder of coordinator v2: the same steps, but passages stay in the state
    store. The search stores its candidates and returns a count; the relevance judgement
    reads them there and stores the kept passages as `sources.<q>`; the workflow returns
    how many it kept (`SourcesKept`), so no passage text enters any history."""
    inp = SourceFinderInput.model_validate(raw)
    queries, usage = QUERIES.reply((yield _ask_queries(ctx, inp)))
    found = CandidatesFound.model_validate(
        (
            yield ctx.call_activity(
                names.SEARCH_CANDIDATES,
                input=_candidates_input(inp, queries.queries),
                retry_policy=IO_RETRY,
            )
        )
    )
    return (yield from _judge(ctx, inp, found, usage))


def proposing_source_finder_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """The source finder of coordinator v4: v2's, with the query proposal and the search
    as one activity (`fte.propose_and_search`), so each sub-question costs the engine two
    hops and a workflow turn less. The model sees the same requests."""
    inp = SourceFinderInput.model_validate(raw)
    found = CandidatesProposed.model_validate(
        (
            yield ctx.call_activity(
                names.PROPOSE_AND_SEARCH,
                input=ProposeAndSearchInput(
                    proposal=_proposal(inp), search=_candidates_input(inp, [])
                ),
                retry_policy=LLM_RETRY,
            )
        )
    )
    return (yield from _judge(ctx, inp, found, found.usage))


def single_activity_source_finder_workflow(
    ctx: wf.DaprWorkflowContext, raw: dict[str, Any]
) -> Flow:
    """The source finder of coordinator v5: v4's steps, query proposal, search and relevance
    judgement, in one activity (`fte.find_sources`), so each sub-question costs the engine
    two hops and a workflow turn less again. The model sees the same requests: the proposal
    is built here as every source finder builds it, and the activity shows the judgement
    the search's passages as v4's judgement does. Still its own workflow instance: its
    retries and result are visible on their own, and the coordinator can terminate it."""
    inp = SourceFinderInput.model_validate(raw)
    kept = yield ctx.call_activity(
        names.FIND_SOURCES,
        input=FindSourcesInput(
            proposal=_proposal(inp),
            search=_search_input(inp, []),
            exclude_passage_ids=inp.exclude_passage_ids,
            keep_at_most=inp.candidates,
            sub_question=inp.sub_question,
            keep=inp.keep,
        ),
        retry_policy=LLM_RETRY,
    )
    return SourcesKept.model_validate(kept).model_dump(mode="json")


def _candidates_input(inp: SourceFinderInput, queries: list[str]) -> CandidatesInput:
    return CandidatesInput(
        search=_search_input(inp, queries),
        name=artifacts.candidates_for(inp.sub_question.id),
        exclude_passage_ids=inp.exclude_passage_ids,
        keep_at_most=inp.candidates,
    )


def _judge(
    ctx: wf.DaprWorkflowContext, inp: SourceFinderInput, found: CandidatesFound, usage: TokenUsage
) -> Flow:
    """Keep the relevant stored candidates; the lean source finders' last step."""
    # The judgement calls the model only when there are candidates, so LLM retries apply.
    result = yield ctx.call_activity(
        names.JUDGE_CANDIDATES,
        input=JudgeInput(
            task_id=inp.task_id,
            sub_question=inp.sub_question,
            candidates=artifacts.candidates_for(inp.sub_question.id),
            endpoint=inp.endpoint,
            model=inp.model,
            keep=inp.keep,
            retrieved_at=found.retrieved_at,
            usage=usage,
        ),
        retry_policy=LLM_RETRY if found.count else IO_RETRY,
    )
    return SourcesKept.model_validate(result).model_dump(mode="json")


def specialist_workflow(ctx: wf.DaprWorkflowContext, raw: dict[str, Any]) -> Flow:
    """Run one agent's activity under the LLM retry policy; the agent is named in the input."""
    task = AgentTask.model_validate(raw)
    reply = yield ctx.call_activity(
        names.agent_activity(task.agent), input=task, retry_policy=LLM_RETRY
    )
    return AgentReply.model_validate(reply).model_dump(mode="json")
