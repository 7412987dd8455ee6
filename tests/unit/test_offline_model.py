"""The built-in offline model: every agent's deterministic offline twin.

Each agent's `offline` function is tested on its typed input, and then end to end through
`fte.agents.offline_model()` and `Agent.run`, which renders the prompt, validates the
answer against the output schema and applies the agent's rules, exactly as with a real
model. The offline model never generates text: every claim it makes is a sentence quoted
from a source, and every evidence quote occurs in the source it names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from fte.agents import AnyAgent, all_agents, analyst, fact_checker, offline_model, planner, writer
from fte.agents import source_finder as finder
from fte.contracts import (
    MAX_SUB_QUESTIONS,
    MIN_SUB_QUESTIONS,
    OFFLINE_MODEL,
    CheckedClaim,
    Claim,
    Passage,
    QuotedSource,
    SubQuestion,
)
from fte.errors import LLMRequestError, PromptError
from fte.llm import FunctionModel, ModelRequest
from fte.sources import LocalCorpus
from fte.text import normalise_quote, sentences

CORPUS_DIR = Path(__file__).resolve().parents[2] / "examples" / "corpus"
QUERY = "How do durable workflows recover from crashes?"
TIMERS_QUESTION = "How do durable timers survive restarts?"
SAGA_QUESTION = "How does saga compensation undo completed steps?"
TIMER_SENTENCE = "A durable timer is a wait that survives restarts."
SUB_QUESTIONS = [
    SubQuestion(id="q1", text=TIMERS_QUESTION),
    SubQuestion(id="q2", text=SAGA_QUESTION),
]


@pytest.fixture(scope="module")
def corpus() -> LocalCorpus:
    return LocalCorpus.load(CORPUS_DIR)


@pytest.fixture
def model() -> FunctionModel:
    return offline_model()


def passages_of(corpus: LocalCorpus, file_name: str) -> list[Passage]:
    found = [p for p in corpus.passages if Path(p.location).name == file_name]
    assert found, f"{file_name} is not in the sample corpus"
    return found


def as_sources(passages: Sequence[Passage], first: int = 1) -> list[QuotedSource]:
    return [
        QuotedSource(id=f"S{n}", title=p.title, location=p.location, text=p.text)
        for n, p in enumerate(passages, first)
    ]


def timer_and_saga_sources(corpus: LocalCorpus) -> list[QuotedSource]:
    passages = passages_of(corpus, "durable-timers.md")
    return as_sources([*passages, *passages_of(corpus, "saga-pattern-and-compensation.md")])


def candidates_of(passages: Sequence[Passage]) -> list[finder.Candidate]:
    return [finder.Candidate(passage_id=p.passage_id, title=p.title, text=p.text) for p in passages]


def analyst_input(sources: list[QuotedSource]) -> analyst.AnalystInput:
    return analyst.AnalystInput(query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources)


def extract_claims(sources: list[QuotedSource]) -> list[Claim]:
    """The offline analyst's claims after the analyst's rules (numbered, citations checked)."""
    inputs = analyst_input(sources)
    return analyst.rules(inputs, analyst.offline(inputs)).claims


def checked_timer_and_saga_claims(sources: list[QuotedSource]) -> list[CheckedClaim]:
    claims = extract_claims(sources)
    verdicts = fact_checker.offline(fact_checker.claims_to_check(claims, sources))
    checked = fact_checker.rules(fact_checker.claims_to_check(claims, sources), verdicts).checked
    assert checked and all(c.verdict == "supported" for c in checked)
    return checked


def writer_input(
    checked: list[CheckedClaim],
    sources: Sequence[QuotedSource],
    sub_questions: list[SubQuestion] = SUB_QUESTIONS,
    query: str = QUERY,
) -> writer.WriterInput:
    return writer.WriterInput(
        query=query,
        sub_questions=sub_questions,
        claims=checked,
        sources=[writer.SourceRef(id=s.id, title=s.title, location=s.location) for s in sources],
    )


def sentences_of(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text.strip())


# --- planner ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "key_term"),
    [
        (QUERY, "durable workflows"),
        ("What is durable execution?", "durable execution"),
        ("How does Dapr handle retry policies?", "dapr"),
        ("durable timers", "durable timers"),
    ],
    ids=["how-do", "what-is", "how-does", "keywords-only"],
)
def test_planner_asks_about_the_query_s_key_terms(
    model: FunctionModel, query: str, key_term: str
) -> None:
    inputs = planner.PlannerInput(query=query, max_sub_questions=MAX_SUB_QUESTIONS)

    run = planner.AGENT.run(model, OFFLINE_MODEL, inputs)

    questions = [q.text for q in run.result.sub_questions]
    assert MIN_SUB_QUESTIONS <= len(questions) <= MAX_SUB_QUESTIONS
    assert [q.id for q in run.result.sub_questions] == [
        f"q{n}" for n in range(1, len(questions) + 1)
    ]
    assert len({q.lower() for q in questions}) == len(questions)
    assert sum(key_term in q.lower() for q in questions) >= len(questions) - 1
    assert all(q.endswith("?") and q[0].isupper() for q in questions)
    assert "offline" in run.result.rationale.lower()
    assert run.usage.calls == 1
    assert run.usage.prompt_tokens > 0 and run.usage.completion_tokens > 0


def test_planner_leads_with_the_researcher_s_question() -> None:
    output = planner.offline(planner.PlannerInput(query=QUERY, max_sub_questions=8))

    assert output.sub_questions[0] == QUERY


def test_planner_compares_both_sides_of_a_comparison() -> None:
    inputs = planner.PlannerInput(query="Sagas vs two-phase commit", max_sub_questions=8)

    questions = planner.offline(inputs).sub_questions

    assert any("compare" in q and "two-phase commit" in q for q in questions)
    assert any(q.startswith("What is two-phase commit") for q in questions)
    assert any(q.startswith("What are Sagas") for q in questions)


@pytest.mark.parametrize("cap", [MIN_SUB_QUESTIONS, 5, MAX_SUB_QUESTIONS])
def test_planner_keeps_to_the_cap_most_important_first(model: FunctionModel, cap: int) -> None:
    inputs = planner.PlannerInput(query=QUERY, max_sub_questions=cap)
    uncapped = planner.offline(inputs.model_copy(update={"max_sub_questions": MAX_SUB_QUESTIONS}))

    plan = planner.AGENT.run(model, OFFLINE_MODEL, inputs).result

    assert [q.text for q in plan.sub_questions] == uncapped.sub_questions[:cap]
    assert plan.sub_questions[0].text == QUERY


# --- source finder -------------------------------------------------------------------


def test_source_finder_proposes_keyword_queries() -> None:
    queries = finder.offline_queries(finder.QueriesInput(sub_question=TIMERS_QUESTION)).queries

    assert 1 <= len(queries) <= finder.MAX_QUERIES
    assert len(set(queries)) == len(queries)
    assert "durable timers" in queries
    for query in queries:
        assert "?" not in query
        assert not set(query.lower().split()) & {"how", "do", "what"}


def test_source_finder_queries_through_the_model_also_search_the_question(
    model: FunctionModel,
) -> None:
    inputs = finder.QueriesInput(sub_question=f"  {TIMERS_QUESTION} ")

    run = finder.QUERIES.run(model, OFFLINE_MODEL, inputs)

    assert run.result.queries[0] == TIMERS_QUESTION
    assert run.result.queries[1:] == finder.offline_queries(inputs).queries


def test_source_finder_queries_for_a_question_of_function_words() -> None:
    queries = finder.offline_queries(finder.QueriesInput(sub_question="How does it work?"))

    assert queries.queries  # never an empty list, which the schema refuses


def test_relevance_keeps_the_passage_that_answers(corpus: LocalCorpus) -> None:
    found = corpus.search("durable timers survive restarts", limit=8)
    unrelated = passages_of(corpus, "dead-letter-queues.txt")[0]
    timers = passages_of(corpus, "durable-timers.md")[0]
    assert timers.passage_id in {p.passage_id for p in found}
    inputs = finder.RelevanceInput(
        sub_question=TIMERS_QUESTION, candidates=candidates_of([unrelated, *found]), keep=8
    )

    judged = finder.offline_relevance(inputs)

    kept = judged.relevant_passage_ids
    assert kept[0] == timers.passage_id
    assert unrelated.passage_id not in kept
    assert set(kept) <= {p.passage_id for p in found}
    assert "word overlap" in judged.notes


def test_relevance_through_the_model_keeps_at_most_keep(
    model: FunctionModel, corpus: LocalCorpus
) -> None:
    found = corpus.search("durable timers survive restarts", limit=8)
    inputs = finder.RelevanceInput(
        sub_question=TIMERS_QUESTION, candidates=candidates_of(found), keep=1
    )
    assert len(finder.offline_relevance(inputs).relevant_passage_ids) > 1

    judged = finder.RELEVANCE.run(model, OFFLINE_MODEL, inputs).result

    assert judged.relevant_passage_ids == finder.offline_relevance(inputs).relevant_passage_ids[:1]


def test_relevance_with_no_candidates_keeps_nothing() -> None:
    inputs = finder.RelevanceInput(sub_question=TIMERS_QUESTION, candidates=[], keep=4)

    judged = finder.offline_relevance(inputs)

    assert judged.relevant_passage_ids == []
    assert "none of the 0 candidates" in judged.notes


# --- analyst ---------------------------------------------------------------------------


def test_analyst_claims_are_verbatim_sentences_of_their_sources(corpus: LocalCorpus) -> None:
    sources = timer_and_saga_sources(corpus)
    by_id = {source.id: source for source in sources}

    output = analyst.offline(analyst_input(sources))

    claims = output.claims
    assert {claim.sub_question_id for claim in claims} == {"q1", "q2"}
    assert len({claim.text for claim in claims}) == len(claims)
    for claim in claims:
        assert claim.source_ids
        for source_id in claim.source_ids:
            assert claim.text in {s.text for s in sentences(by_id[source_id].text)}
        assert claim.text[0].isupper() and claim.text.endswith(".")
    timer_claims = [claim.text for claim in claims if claim.sub_question_id == "q1"]
    assert 1 <= len(timer_claims) <= analyst.OFFLINE_CLAIMS_PER_QUESTION
    # Best match first: the sentence that states exactly what the sub-question asks.
    assert timer_claims[0] == TIMER_SENTENCE
    assert output.summary.startswith("Offline extractive analysis")


def test_analyst_cites_every_source_that_states_a_sentence(corpus: LocalCorpus) -> None:
    (timers, *_) = passages_of(corpus, "durable-timers.md")
    # The same passage retrieved twice (two sub-questions found it) is one claim, two sources.
    sources = as_sources([timers, timers])

    output = analyst.offline(analyst_input(sources))

    assert output.claims
    assert all(claim.source_ids == ["S1", "S2"] for claim in output.claims)


def test_analyst_skips_headings_code_and_fragments() -> None:
    text = (
        "# How durable timers survive restarts\n\n"
        "```python\nctx.create_timer(fire_at)  # durable timers survive restarts.\n```\n\n"
        "| timers | survive restarts |\n|---|---|\n\n"
        "durable timers survive restarts when the engine keeps them.\n\n"
        "Durable timers survive restarts because the engine stores them in history."
    )
    source = QuotedSource(id="S1", title="Timers", location="timers.md", text=text)

    output = analyst.offline(analyst_input([source]))

    assert [claim.text for claim in output.claims] == [
        "Durable timers survive restarts because the engine stores them in history."
    ]


def test_analyst_with_no_sources_extracts_nothing() -> None:
    output = analyst.offline(analyst_input([]))

    assert output.claims == []
    assert "no claims" in output.summary


def test_analyst_through_the_model_numbers_claims_and_keeps_citations(
    model: FunctionModel, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)

    analysis = analyst.AGENT.run(model, OFFLINE_MODEL, analyst_input(sources)).result

    assert analysis.claims
    assert [claim.id for claim in analysis.claims] == [
        f"C{n}" for n in range(1, len(analysis.claims) + 1)
    ]
    known = {source.id for source in sources}
    for claim in analysis.claims:
        assert claim.source_ids and set(claim.source_ids) <= known
        assert claim.sub_question_id in {"q1", "q2"}


# --- fact checker --------------------------------------------------------------------


def test_fact_checker_verdicts(corpus: LocalCorpus) -> None:
    sources = timer_and_saga_sources(corpus)
    by_id = {source.id: source for source in sources}
    claims = extract_claims(sources)
    timers = next(s for s in sources if TIMER_SENTENCE in s.text)
    invented = Claim(
        id="C90", text="Durable timers are stored on the moon.", source_ids=[timers.id]
    )
    negated = Claim(
        id="C91",
        text=TIMER_SENTENCE.replace(" is a wait", " is not a wait"),
        source_ids=[timers.id],
    )
    # A cited source that was never retrieved is not shown, so it cannot support anything.
    missing = Claim(id="C92", text=TIMER_SENTENCE, source_ids=["S99"])
    every = [*claims, invented, negated, missing]

    output = fact_checker.offline(fact_checker.claims_to_check(every, sources))

    verdicts = {verdict.claim_id: verdict for verdict in output.verdicts}
    assert [v.claim_id for v in output.verdicts] == [claim.id for claim in every]
    for claim in claims:
        verdict = verdicts[claim.id]
        assert verdict.verdict == "supported"
        assert verdict.evidence_source_id in claim.source_ids
        assert verdict.evidence in by_id[verdict.evidence_source_id].text
        assert verdict.evidence == claim.text
    assert verdicts["C90"].verdict == "unsupported"
    assert verdicts["C90"].evidence == ""
    assert verdicts["C90"].evidence_source_id is None
    assert verdicts["C91"].verdict == "contradicted"
    assert verdicts["C91"].evidence == TIMER_SENTENCE
    assert verdicts["C91"].evidence_source_id == timers.id
    assert verdicts["C92"].verdict == "unsupported"


def test_fact_checker_contradicts_a_changed_figure(corpus: LocalCorpus) -> None:
    sources = as_sources(passages_of(corpus, "durable-timers.md"))
    sentence = (
        "A subscription workflow that sleeps 30 days between billing cycles costs a row in the "
        "state store, not a process."
    )
    assert any(sentence in source.text for source in sources)
    changed = Claim(id="C1", text=sentence.replace("30 days", "45 days"), source_ids=["S1", "S2"])

    (verdict,) = fact_checker.offline(fact_checker.claims_to_check([changed], sources)).verdicts

    assert verdict.verdict == "contradicted"
    assert verdict.evidence == sentence


def test_fact_checker_through_the_model_quotes_only_cited_sources(
    model: FunctionModel, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)
    claims = extract_claims(sources)
    timers = next(s for s in sources if TIMER_SENTENCE in s.text)
    elsewhere = next(s for s in sources if TIMER_SENTENCE not in s.text)
    # True, but it cites a source that does not say it.
    miscited = Claim(id="C90", text=TIMER_SENTENCE, source_ids=[elsewhere.id])
    inputs = fact_checker.claims_to_check([*claims, miscited], sources)

    checked = fact_checker.AGENT.run(model, OFFLINE_MODEL, inputs).result.checked

    by_id = {source.id: source for source in sources}
    assert [c.claim.id for c in checked] == [c.id for c in [*claims, miscited]]
    for item in checked[:-1]:
        assert item.verdict == "supported"
        assert item.evidence_source_id in item.claim.source_ids
        source_text = normalise_quote(by_id[item.evidence_source_id or ""].text)
        assert normalise_quote(item.evidence) in source_text
    assert checked[-1].verdict == "unsupported"
    assert timers.id != elsewhere.id


# --- writer ----------------------------------------------------------------------------


def test_writer_states_supported_claims_citing_only_their_given_sources(
    corpus: LocalCorpus,
) -> None:
    sources = timer_and_saga_sources(corpus)
    checked = checked_timer_and_saga_claims(sources)
    # A supported claim that also cites an unlisted source, and a claim nobody confirmed.
    first = checked[0]
    checked[0] = first.model_copy(
        update={
            "claim": first.claim.model_copy(update={"source_ids": [*first.claim.source_ids, "S99"]})
        }
    )
    checked.append(
        CheckedClaim(
            claim=Claim(id="C90", text="Durable timers are stored on the moon.", source_ids=["S1"]),
            verdict="unsupported",
            evidence="",
        )
    )
    claims_by_id = {c.claim.id: c for c in checked}
    known = {source.id for source in sources}

    report = writer.offline(writer_input(checked, sources))

    assert report.title == "How durable workflows recover from crashes"
    assert 3 <= len(sentences_of(report.summary)) <= 5
    stated: list[str] = []
    for section in report.sections:
        assert section.heading
        for paragraph in section.paragraphs:
            assert set(paragraph.source_ids) <= known
            expected_sources = {
                source_id
                for claim_id in paragraph.claim_ids
                for source_id in claims_by_id[claim_id].claim.source_ids
                if source_id in known
            }
            assert set(paragraph.source_ids) == expected_sources
            assert not re.search(r"\b[SC]\d+\b", paragraph.text)
            for claim_id in paragraph.claim_ids:
                assert claims_by_id[claim_id].verdict == "supported"
                assert claims_by_id[claim_id].claim.text in paragraph.text
            stated += paragraph.claim_ids
    assert sorted(stated) == sorted(c.claim.id for c in checked if c.verdict == "supported")
    closing = report.sections[-1]
    assert closing.heading == "Limits of this report"
    assert "1 of the" in closing.paragraphs[0].text


def test_writer_sections_follow_the_sub_questions_in_plan_order(corpus: LocalCorpus) -> None:
    sources = timer_and_saga_sources(corpus)
    checked = checked_timer_and_saga_claims(sources)
    # One claim the analyst did not tie to a sub-question.
    last = checked[-1]
    checked[-1] = last.model_copy(
        update={"claim": last.claim.model_copy(update={"sub_question_id": None})}
    )
    unanswered = SubQuestion(id="q3", text="What are dead-letter queues?")
    # The plan's order, not the claims' order (they come timers first).
    plan = [SUB_QUESTIONS[1], SUB_QUESTIONS[0], unanswered]

    report = writer.offline(writer_input(checked, sources, plan))

    assert [section.heading for section in report.sections] == [
        "How saga compensation undoes completed steps",
        "How durable timers survive restarts",
        "Other findings",
        "Limits of this report",
    ]
    sub_question_of = {c.claim.id: c.claim.sub_question_id for c in checked}
    for section, expected in zip(report.sections, ["q2", "q1", None], strict=False):
        claim_ids = [i for paragraph in section.paragraphs for i in paragraph.claim_ids]
        assert claim_ids
        assert {sub_question_of[claim_id] for claim_id in claim_ids} == {expected}
    stated = [i for s in report.sections for p in s.paragraphs for i in p.claim_ids]
    assert sorted(stated) == sorted(c.claim.id for c in checked)
    limits = " ".join(p.text for p in report.sections[-1].paragraphs)
    assert "1 of the 3 sub-questions of the research plan" in limits
    assert f'"{unanswered.text}"' in limits


def test_writer_summary_spans_sub_questions_and_does_not_echo_section_starts(
    corpus: LocalCorpus,
) -> None:
    sources = timer_and_saga_sources(corpus)
    checked = checked_timer_and_saga_claims(sources)
    by_question = {
        q.id: [c.claim.text for c in checked if c.claim.sub_question_id == q.id]
        for q in SUB_QUESTIONS
    }
    assert all(len(texts) > 1 for texts in by_question.values())

    report = writer.offline(writer_input(checked, sources))

    summary = sentences_of(report.summary)
    assert 3 <= len(summary) <= 5
    assert set(summary) <= {c.claim.text for c in checked}
    for texts in by_question.values():
        assert set(summary) & set(texts)
    for section in report.sections[:-1]:
        assert sentences_of(section.paragraphs[0].text)[0] not in summary


@pytest.mark.parametrize(
    ("sub_question", "heading"),
    [
        (TIMERS_QUESTION, "How durable timers survive restarts"),
        ("Why does Dapr persist workflow history?", "Why Dapr persists workflow history"),
        ("What is durable execution?", "Durable execution"),
        ("What are the trade-offs and limits of sagas?", "Trade-offs and limits of sagas"),
        ("How do sagas compare with two-phase commit?", "Sagas versus two-phase commit"),
        (
            "What failure modes and risks affect durable timers?",
            "What failure modes and risks affect durable timers",
        ),
        ("What is Dapr used for?", "What is Dapr used for"),
        (
            "What are the limits of durable timers when the state store of the cluster is "
            "unavailable for hours?",
            "Limits of durable timers when the state store of the cluster",
        ),
        # The plan leads with the research question itself, which the title already states.
        (QUERY, "Main findings"),
    ],
    ids=[
        "how-do",
        "why-does",
        "what-is",
        "what-are-the",
        "comparison",
        "no-rule-fits",
        "ends-on-a-preposition",
        "long",
        "the-query-itself",
    ],
)
def test_writer_headings_are_made_from_the_sub_questions(
    corpus: LocalCorpus, sub_question: str, heading: str
) -> None:
    (source, *_) = as_sources(passages_of(corpus, "durable-timers.md"))
    claim = CheckedClaim(
        claim=Claim(id="C1", text=TIMER_SENTENCE, source_ids=[source.id], sub_question_id="q1"),
        verdict="supported",
        evidence=TIMER_SENTENCE,
        evidence_source_id=source.id,
    )

    report = writer.offline(
        writer_input([claim], [source], [SubQuestion(id="q1", text=sub_question)])
    )

    assert [section.heading for section in report.sections] == [heading, "Limits of this report"]


def test_writer_without_supported_claims_says_so() -> None:
    unsupported = CheckedClaim(
        claim=Claim(id="C1", text="Durable timers are stored on the moon.", source_ids=["S1"]),
        verdict="unsupported",
        evidence="",
    )

    report = writer.offline(writer_input([unsupported], [], sub_questions=[]))

    assert "no statement that the fact check could confirm" in report.summary
    assert 3 <= len(sentences_of(report.summary)) <= 5
    assert all(not p.source_ids and not p.claim_ids for s in report.sections for p in s.paragraphs)


# --- the model: validation, determinism, errors ---------------------------------------------


def test_every_agent_has_an_offline_twin_with_a_valid_answer() -> None:
    names = set(all_agents())

    assert names == {
        "planner",
        "source_finder.queries",
        "source_finder.relevance",
        "analyst",
        "fact_checker",
        "writer",
        "reviewer",
    }


def test_same_inputs_give_the_same_answer_and_usage(corpus: LocalCorpus) -> None:
    inputs = analyst_input(timer_and_saga_sources(corpus))

    first = analyst.AGENT.run(offline_model(), OFFLINE_MODEL, inputs)
    second = analyst.AGENT.run(offline_model(), OFFLINE_MODEL, inputs.model_copy(deep=True))

    assert first.result == second.result
    assert first.usage == second.usage


def test_the_model_answers_under_its_own_name_whatever_is_asked_for(
    model: FunctionModel,
) -> None:
    inputs = finder.QueriesInput(sub_question=TIMERS_QUESTION)
    system, user = finder.QUERIES.render(inputs)
    request = ModelRequest(
        agent=finder.QUERIES.name,
        model="gpt-4o-mini",
        system=system,
        user=user,
        output_model=finder.SearchQueries,
        inputs=inputs,
    )

    result = model.complete(request)

    assert result.model == OFFLINE_MODEL
    assert result.http_attempts == 0
    assert result.output == finder.offline_queries(inputs)
    assert result.usage.calls == 1


def request_for(agent: str, inputs: BaseModel, output_model: type[BaseModel]) -> ModelRequest[Any]:
    return ModelRequest(
        agent=agent,
        model=OFFLINE_MODEL,
        system="s",
        user="u",
        output_model=output_model,
        inputs=inputs,
    )


def test_an_unknown_agent_is_a_prompt_error(model: FunctionModel) -> None:
    request = request_for("oracle", finder.QueriesInput(sub_question="x"), finder.SearchQueries)

    with pytest.raises(PromptError, match="unknown agent 'oracle'"):
        model.complete(request)


def test_inputs_of_another_agent_fail_once_naming_the_agent(model: FunctionModel) -> None:
    request = request_for(
        "analyst", finder.QueriesInput(sub_question=TIMERS_QUESTION), analyst.AnalystOutput
    )

    with pytest.raises(
        LLMRequestError, match=r"^analyst: model 'fte-offline-extractive' failed"
    ) as info:
        model.complete(request)

    assert info.value.attempts == 1


# --- end to end --------------------------------------------------------------------------


def run(agent: AnyAgent, inputs: BaseModel) -> Any:
    return agent.run(offline_model(), OFFLINE_MODEL, inputs).result


def research(corpus: LocalCorpus, query: str) -> tuple[writer.WriterOutput, list[QuotedSource]]:
    """The research workflow's steps in order, in-process, each agent through the model."""
    plan: planner.Plan = run(
        planner.AGENT, planner.PlannerInput(query=query, max_sub_questions=MAX_SUB_QUESTIONS)
    )
    sources: list[QuotedSource] = []
    for sub_question in plan.sub_questions:
        queries = run(finder.QUERIES, finder.QueriesInput(sub_question=sub_question.text))
        best: dict[str, Passage] = {}
        for search in queries.queries:
            for passage in corpus.search(search, limit=8):
                if passage.passage_id not in best or passage.score > best[passage.passage_id].score:
                    best[passage.passage_id] = passage
        found = sorted(best.values(), key=lambda p: (-p.score, p.passage_id))[:8]
        judged = run(
            finder.RELEVANCE,
            finder.RelevanceInput(
                sub_question=sub_question.text, candidates=candidates_of(found), keep=4
            ),
        )
        by_id = {p.passage_id: p for p in found}
        seen = {source.location + source.text for source in sources}
        for passage_id in judged.relevant_passage_ids:
            passage = by_id[passage_id]
            if passage.location + passage.text not in seen:
                sources += as_sources([passage], first=len(sources) + 1)
    analysis: analyst.Analysis = run(
        analyst.AGENT,
        analyst.AnalystInput(query=query, sub_questions=plan.sub_questions, sources=sources),
    )
    checked: fact_checker.FactCheck = run(
        fact_checker.AGENT, fact_checker.claims_to_check(analysis.claims, sources)
    )
    supported = [c for c in checked.checked if c.verdict == "supported"]
    report: writer.WriterOutput = run(
        writer.AGENT, writer_input(supported, sources, plan.sub_questions, query=query)
    )
    return report, sources


def test_end_to_end_report_from_the_sample_corpus(corpus: LocalCorpus) -> None:
    report, sources = research(corpus, QUERY)

    by_id = {source.id: source for source in sources}
    assert len(by_id) == len(sources)
    cited_sections = [
        section for section in report.sections if any(p.source_ids for p in section.paragraphs)
    ]
    assert len(cited_sections) >= 2
    # One section per answered sub-question in plan order; the plan leads with the query.
    assert report.sections[0].heading == "Main findings"
    assert report.sections[-1].heading == "Limits of this report"
    assert "crash" in report.summary.lower()
    # Nothing invented: every sentence of a cited paragraph is a sentence of a cited source.
    for section in cited_sections:
        for paragraph in section.paragraphs:
            assert set(paragraph.source_ids) <= set(by_id)
            cited_text = " ".join(by_id[s].text for s in paragraph.source_ids)
            for sentence in sentences_of(paragraph.text):
                assert " ".join(sentence.split()) in " ".join(cited_text.split())


def test_end_to_end_is_deterministic(corpus: LocalCorpus) -> None:
    query = "How do retries and timers make workflows reliable?"

    assert research(corpus, query) == research(corpus, query)
