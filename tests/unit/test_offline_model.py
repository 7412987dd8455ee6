"""The built-in offline model, driven through the real agents, prompts and LLMClient.

Every test goes through HTTP exactly as a real model server would be used: the agents render
their prompts, `LLMClient` sends them with the openai SDK, and the offline transport answers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from pydantic import BaseModel

from fte.agents import analyst, fact_checker, planner, source_finder, writer
from fte.agents.prompting import load_prompt, render, source_block
from fte.contracts import CheckedClaim, Claim, Passage, Source, SubQuestion
from fte.errors import LLMRequestError
from fte.llm import LLMClient, LLMConfig
from fte.offline_model import OFFLINE_BASE_URL, OFFLINE_MODEL_NAME, offline_http_client
from fte.sources import LocalCorpus

CORPUS_DIR = Path(__file__).resolve().parents[2] / "examples" / "corpus"
# The offline model answers whatever model name the run configuration asks for.
MODEL = "gpt-4o-mini"
QUERY = "How do durable workflows recover from crashes?"
TIMERS_QUESTION = "How do durable timers survive restarts?"
SAGA_QUESTION = "How does saga compensation undo completed steps?"
TIMER_SENTENCE = "A durable timer is a wait that survives restarts."
RETRIEVED_AT = "2025-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def corpus() -> LocalCorpus:
    return LocalCorpus.load(CORPUS_DIR)


@pytest.fixture
def offline() -> Iterator[LLMClient]:
    with (
        offline_http_client() as http_client,
        LLMClient(LLMConfig(base_url=OFFLINE_BASE_URL), http_client=http_client) as client,
    ):
        yield client


def passages_of(corpus: LocalCorpus, file_name: str) -> list[Passage]:
    found = [p for p in corpus.passages if Path(p.location).name == file_name]
    assert found, f"{file_name} is not in the sample corpus"
    return found


def as_sources(passages: Sequence[Passage], sub_question_id: str = "q1") -> list[Source]:
    return [
        Source(
            id=f"S{number}",
            passage_id=passage.passage_id,
            title=passage.title,
            location=passage.location,
            text=passage.text,
            retrieved_at=RETRIEVED_AT,
            sub_question_id=sub_question_id,
        )
        for number, passage in enumerate(passages, 1)
    ]


def timer_and_saga_sources(corpus: LocalCorpus) -> list[Source]:
    passages = passages_of(corpus, "durable-timers.md")
    return as_sources([*passages, *passages_of(corpus, "saga-pattern-and-compensation.md")])


SUB_QUESTIONS = [
    SubQuestion(id="q1", text=TIMERS_QUESTION),
    SubQuestion(id="q2", text=SAGA_QUESTION),
]


def claims_from(extracted: analyst.AnalystOutput) -> list[Claim]:
    return [
        Claim(
            id=f"C{number}",
            text=claim.text,
            source_ids=claim.source_ids,
            sub_question_id=claim.sub_question_id,
        )
        for number, claim in enumerate(extracted.claims, 1)
    ]


def checked_from(
    claims: Sequence[Claim], verdicts: fact_checker.FactCheckOutput
) -> list[CheckedClaim]:
    by_id = {verdict.claim_id: verdict for verdict in verdicts.verdicts}
    return [
        CheckedClaim(
            claim=claim,
            verdict=by_id[claim.id].verdict,
            evidence=by_id[claim.id].evidence,
            evidence_source_id=by_id[claim.id].evidence_source_id,
        )
        for claim in claims
    ]


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
    offline: LLMClient, query: str, key_term: str
) -> None:
    result = planner.plan(offline, model=MODEL, query=query)

    questions = result.output.sub_questions
    assert 3 <= len(questions) <= 8
    assert len({q.lower() for q in questions}) == len(questions)
    for question in questions:
        assert key_term in question.lower()
        assert question.endswith("?")
    assert "offline" in result.output.rationale.lower()
    assert result.usage.calls == 1
    assert result.usage.prompt_tokens > 0 and result.usage.completion_tokens > 0


def test_planner_compares_both_sides_of_a_comparison(offline: LLMClient) -> None:
    result = planner.plan(offline, model=MODEL, query="Sagas vs two-phase commit")

    questions = result.output.sub_questions
    assert any("compare" in q and "two-phase commit" in q for q in questions)
    assert any(q.startswith("What is two-phase commit") for q in questions)
    assert any(q.startswith("What are Sagas") for q in questions)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "How do retries and timers make workflows reliable?",
            [
                "How do retries and timers make workflows reliable?",
                "What are retries and timers?",
                "What mechanism lets retries and timers make workflows reliable?",
                "What are the trade-offs and limits of retries and timers?",
                "What failure modes and risks affect retries and timers?",
                "What are practical examples of retries and timers in use?",
            ],
        ),
        (
            "What limits the size of a workflow history?",
            [
                "What limits the size of a workflow history?",
                "What is workflow history size?",
                "How does workflow history size work?",
                "What are the trade-offs and limits of workflow history size?",
                "What failure modes and risks affect workflow history size?",
                "What are practical examples of workflow history size in use?",
            ],
        ),
        (
            "How do durable workflows recover from crashes without redoing work?",
            [
                "How do durable workflows recover from crashes without redoing work?",
                "What are durable workflows?",
                "What mechanism lets durable workflows recover from crashes without redoing work?",
                "What are the trade-offs and limits of durable workflows?",
                "What failure modes and risks affect durable workflows?",
                "What are practical examples of durable workflows in use?",
            ],
        ),
        (
            "Sagas vs two-phase commit",
            [
                "How do Sagas compare with two-phase commit?",
                "What are Sagas?",
                "What is two-phase commit?",
                "When are Sagas a better choice than two-phase commit?",
                "What are the trade-offs and limits of Sagas?",
                "What are the trade-offs and limits of two-phase commit?",
            ],
        ),
        (
            "Why do workflow activities need idempotency keys?",
            [
                "Why do workflow activities need idempotency keys?",
                "What are workflow activities?",
                "What would happen if workflow activities did not need idempotency keys?",
                "What are the trade-offs and limits of workflow activities?",
                "What failure modes and risks affect workflow activities?",
                "What are practical examples of workflow activities in use?",
            ],
        ),
        (
            "How does the saga pattern handle partial failures?",
            [
                "How does the saga pattern handle partial failures?",
                "What is the saga pattern?",
                "What mechanism lets the saga pattern handle partial failures?",
                "What are the trade-offs and limits of the saga pattern?",
                "What failure modes and risks affect the saga pattern?",
                "What are practical examples of the saga pattern in use?",
            ],
        ),
        (
            "What is the outbox pattern?",
            [
                "What is the outbox pattern?",
                "How does the outbox pattern work?",
                "What are the trade-offs and limits of the outbox pattern?",
                "What failure modes and risks affect the outbox pattern?",
                "What are practical examples of the outbox pattern in use?",
            ],
        ),
        (
            "What causes nondeterminism errors in Temporal workflows?",
            [
                "What causes nondeterminism errors in Temporal workflows?",
                "What are nondeterminism errors?",
                "How do nondeterminism errors work?",
                "How do nondeterminism errors relate to Temporal workflows?",
                "What are the trade-offs and limits of nondeterminism errors?",
                "What failure modes and risks affect nondeterminism errors?",
                "What are practical examples of nondeterminism errors in use?",
            ],
        ),
    ],
    ids=[
        "joint-subject",
        "of-phrase",
        "long-focus",
        "comparison",
        "why",
        "leading-the",
        "what-is-the",
        "what-verb",
    ],
)
def test_planner_sub_questions_read_as_english(
    offline: LLMClient, query: str, expected: list[str]
) -> None:
    result = planner.plan(offline, model=MODEL, query=query, max_sub_questions=8)

    assert result.output.sub_questions == expected


def test_planner_keeps_to_a_smaller_cap(offline: LLMClient) -> None:
    result = planner.plan(offline, model=MODEL, query=QUERY, max_sub_questions=3)

    assert len(result.output.sub_questions) == 3
    # Most important first: the researcher's own question leads.
    assert result.output.sub_questions[0] == QUERY


# --- source finder -------------------------------------------------------------------


def test_source_finder_proposes_keyword_queries(offline: LLMClient) -> None:
    result = source_finder.propose_queries(offline, model=MODEL, sub_question=TIMERS_QUESTION)

    queries = result.output.queries
    assert 1 <= len(queries) <= 4
    assert len(set(queries)) == len(queries)
    assert "durable timers" in queries
    for query in queries:
        assert "?" not in query
        assert not set(query.lower().split()) & {"how", "do", "what"}


def test_relevance_keeps_the_passage_that_answers(offline: LLMClient, corpus: LocalCorpus) -> None:
    candidates = corpus.search("durable timers survive restarts", limit=8)
    unrelated = passages_of(corpus, "dead-letter-queues.txt")[0]
    timers = passages_of(corpus, "durable-timers.md")[0]
    assert timers.passage_id in {c.passage_id for c in candidates}

    result = source_finder.judge_relevance(
        offline, model=MODEL, sub_question=TIMERS_QUESTION, candidates=[unrelated, *candidates]
    )

    kept = result.output.relevant_passage_ids
    assert kept[0] == timers.passage_id
    assert unrelated.passage_id not in kept
    assert set(kept) <= {c.passage_id for c in candidates}
    assert "word overlap" in result.output.notes


def test_relevance_with_no_candidates_keeps_nothing(offline: LLMClient) -> None:
    result = source_finder.judge_relevance(
        offline, model=MODEL, sub_question=TIMERS_QUESTION, candidates=[]
    )

    assert result.output.relevant_passage_ids == []
    assert "none of the 0 candidates" in result.output.notes


# --- analyst ---------------------------------------------------------------------------


def test_analyst_claims_are_verbatim_sentences_of_their_sources(
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)
    by_id = {source.id: source for source in sources}

    result = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
    )

    claims = result.output.claims
    assert {claim.sub_question_id for claim in claims} == {"q1", "q2"}
    assert len({claim.text for claim in claims}) == len(claims)
    for claim in claims:
        assert claim.source_ids
        for source_id in claim.source_ids:
            assert claim.text in by_id[source_id].text
        assert claim.text[0].isupper() and claim.text.endswith(".")
    timer_claims = [claim.text for claim in claims if claim.sub_question_id == "q1"]
    assert 1 <= len(timer_claims) <= 3
    # Best match first: the sentence that states exactly what the sub-question asks.
    assert timer_claims[0] == TIMER_SENTENCE
    assert result.output.summary.startswith("Offline extractive analysis")


def test_analyst_with_no_sources_extracts_nothing(offline: LLMClient) -> None:
    result = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=[]
    )

    assert result.output.claims == []
    assert "no claims" in result.output.summary


# --- fact checker --------------------------------------------------------------------


def test_fact_checker_verdicts(offline: LLMClient, corpus: LocalCorpus) -> None:
    sources = timer_and_saga_sources(corpus)
    by_id = {source.id: source for source in sources}
    extracted = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
    ).output
    claims = claims_from(extracted)
    timers = next(s for s in sources if TIMER_SENTENCE in s.text)
    invented = Claim(
        id="C90", text="Durable timers are stored on the moon.", source_ids=[timers.id]
    )
    negated = Claim(
        id="C91",
        text=TIMER_SENTENCE.replace(" is a wait", " is not a wait"),
        source_ids=[timers.id],
    )
    missing = Claim(id="C92", text=TIMER_SENTENCE, source_ids=["S99"])

    result = fact_checker.check(
        offline, model=MODEL, claims=[*claims, invented, negated, missing], sources=sources
    )

    verdicts = {verdict.claim_id: verdict for verdict in result.output.verdicts}
    assert list(verdicts) == [claim.id for claim in [*claims, invented, negated, missing]]
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
    # A cited source that was never retrieved cannot support anything.
    assert verdicts["C92"].verdict == "unsupported"


def test_fact_checker_contradicts_a_changed_figure(offline: LLMClient, corpus: LocalCorpus) -> None:
    sources = as_sources(passages_of(corpus, "durable-timers.md"))
    sentence = (
        "A subscription workflow that sleeps 30 days between billing cycles costs a row in the "
        "state store, not a process."
    )
    assert any(sentence in source.text for source in sources)
    changed = Claim(id="C1", text=sentence.replace("30 days", "45 days"), source_ids=["S1", "S2"])

    result = fact_checker.check(offline, model=MODEL, claims=[changed], sources=sources)

    (verdict,) = result.output.verdicts
    assert verdict.verdict == "contradicted"
    assert verdict.evidence == sentence


# --- writer ----------------------------------------------------------------------------


def test_writer_states_supported_claims_citing_only_their_given_sources(
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)
    extracted = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
    ).output
    claims = claims_from(extracted)
    checked = checked_from(
        claims, fact_checker.check(offline, model=MODEL, claims=claims, sources=sources).output
    )
    # A supported claim that also cites an unknown source, and a claim nobody confirmed.
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

    result = writer.write(
        offline,
        model=MODEL,
        query=QUERY,
        claims=checked,
        sources=sources,
        sub_questions=SUB_QUESTIONS,
    )

    report = result.output
    assert report.title == "How durable workflows recover from crashes"
    assert 3 <= len(re.findall(r"[.!?](?:\s|$)", report.summary)) <= 5
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


def checked_timer_and_saga_claims(offline: LLMClient, sources: list[Source]) -> list[CheckedClaim]:
    extracted = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
    ).output
    claims = claims_from(extracted)
    verdicts = fact_checker.check(offline, model=MODEL, claims=claims, sources=sources).output
    checked = checked_from(claims, verdicts)
    assert all(c.verdict == "supported" for c in checked)
    return checked


def sentences_of(text: str) -> list[str]:
    return re.split(r"(?<=[.!?])\s+", text.strip())


def test_writer_sections_follow_the_sub_questions_in_plan_order(
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)
    checked = checked_timer_and_saga_claims(offline, sources)
    # One claim the analyst did not tie to a sub-question.
    last = checked[-1]
    checked[-1] = last.model_copy(
        update={"claim": last.claim.model_copy(update={"sub_question_id": None})}
    )
    unanswered = SubQuestion(id="q3", text="What are dead-letter queues?")
    # The plan's order, not the claims' order (they come timers first).
    plan = [SUB_QUESTIONS[1], SUB_QUESTIONS[0], unanswered]

    report = writer.write(
        offline, model=MODEL, query=QUERY, claims=checked, sources=sources, sub_questions=plan
    ).output

    assert [section.heading for section in report.sections] == [
        "How does saga compensation undo completed steps",
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
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)
    checked = checked_timer_and_saga_claims(offline, sources)
    by_question = {
        q.id: [c.claim.text for c in checked if c.claim.sub_question_id == q.id]
        for q in SUB_QUESTIONS
    }
    assert all(len(texts) > 1 for texts in by_question.values())

    report = writer.write(
        offline,
        model=MODEL,
        query=QUERY,
        claims=checked,
        sources=sources,
        sub_questions=SUB_QUESTIONS,
    ).output

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
    offline: LLMClient, sub_question: str, heading: str
) -> None:
    source = as_sources(passages_of(LocalCorpus.load(CORPUS_DIR), "durable-timers.md"))[0]
    claim = CheckedClaim(
        claim=Claim(id="C1", text=TIMER_SENTENCE, source_ids=[source.id], sub_question_id="q1"),
        verdict="supported",
        evidence=TIMER_SENTENCE,
        evidence_source_id=source.id,
    )

    report = writer.write(
        offline,
        model=MODEL,
        query=QUERY,
        claims=[claim],
        sources=[source],
        sub_questions=[SubQuestion(id="q1", text=sub_question)],
    ).output

    assert [section.heading for section in report.sections] == [heading, "Limits of this report"]


def test_writer_without_supported_claims_says_so(offline: LLMClient) -> None:
    unsupported = CheckedClaim(
        claim=Claim(id="C1", text="Durable timers are stored on the moon.", source_ids=["S1"]),
        verdict="unsupported",
        evidence="",
    )

    result = writer.write(offline, model=MODEL, query=QUERY, claims=[unsupported], sources=[])

    report = result.output
    assert "no statement that the fact check could confirm" in report.summary
    assert all(not p.source_ids and not p.claim_ids for s in report.sections for p in s.paragraphs)


# --- protocol, determinism and errors -------------------------------------------------


def test_same_request_gives_the_same_answer_and_usage(
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    sources = timer_and_saga_sources(corpus)

    first = analyst.analyse(
        offline, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
    )
    with (
        offline_http_client() as http_client,
        LLMClient(LLMConfig(base_url=OFFLINE_BASE_URL), http_client=http_client) as other,
    ):
        second = analyst.analyse(
            other, model=MODEL, query=QUERY, sub_questions=SUB_QUESTIONS, sources=sources
        )

    assert first.output == second.output
    assert first.usage == second.usage


def test_response_is_a_standard_chat_completion() -> None:
    system, template = load_prompt(source_finder.QUERIES_PROMPT_NAME)
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": render(template, sub_question=TIMERS_QUESTION)},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "SearchQueries",
                "schema": source_finder.SearchQueries.model_json_schema(),
                "strict": False,
            },
        },
    }
    with offline_http_client() as client:
        responses = [client.post(f"{OFFLINE_BASE_URL}/chat/completions", json=body) for _ in "ab"]

    assert responses[0].status_code == 200
    assert responses[0].content == responses[1].content
    completion = responses[0].json()
    assert completion["object"] == "chat.completion"
    assert completion["created"] == 0
    assert completion["model"] == OFFLINE_MODEL_NAME
    (choice,) = completion["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert json.loads(choice["message"]["content"])["queries"]
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_other_endpoints_get_an_openai_style_400() -> None:
    with offline_http_client() as client:
        response = client.post(f"{OFFLINE_BASE_URL}/embeddings", json={"input": "x"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "chat/completions" in error["message"]


class Mystery(BaseModel):
    answer: int


def test_unknown_schema_is_a_request_error(offline: LLMClient) -> None:
    with pytest.raises(LLMRequestError, match="cannot produce the output schema 'Mystery'") as info:
        offline.structured(agent="test", model=MODEL, system="s", user="u", output_model=Mystery)

    assert info.value.status_code == 400
    assert info.value.attempts == 1


def test_a_prompt_that_does_not_follow_the_template_fails_loudly(offline: LLMClient) -> None:
    with pytest.raises(LLMRequestError, match=r"does not follow the layout of prompts/analyst\.md"):
        offline.structured(
            agent="analyst",
            model=MODEL,
            system="s",
            user="Sources: S1 says hello",
            output_model=analyst.AnalystOutput,
        )


def test_a_changed_source_block_layout_fails_loudly(
    offline: LLMClient, corpus: LocalCorpus
) -> None:
    (source, *_) = as_sources(passages_of(corpus, "durable-timers.md"))
    _, template = load_prompt(analyst.PROMPT_NAME)
    user = render(
        template,
        query=QUERY,
        sub_questions=f"- q1: {TIMERS_QUESTION}",
        # As if source_block() had started writing the location before the title.
        sources=source_block(source).replace(
            f"title: {source.title}\nlocation: {source.location}",
            f"location: {source.location}\ntitle: {source.title}",
        ),
    )

    with pytest.raises(LLMRequestError, match=r"prompt layout not understood: expected a <source"):
        offline.structured(
            agent="analyst", model=MODEL, system="s", user=user, output_model=analyst.AnalystOutput
        )


# --- end to end --------------------------------------------------------------------------


def research(
    llm: LLMClient, corpus: LocalCorpus, query: str
) -> tuple[writer.WriterOutput, list[Source]]:
    """The research workflow's steps in order, in-process, as the activities run them."""
    plan = planner.plan(llm, model=MODEL, query=query).output
    sub_questions = [SubQuestion(id=f"q{n}", text=t) for n, t in enumerate(plan.sub_questions, 1)]
    sources: list[Source] = []
    for sub_question in sub_questions:
        proposed = source_finder.propose_queries(llm, model=MODEL, sub_question=sub_question.text)
        best: dict[str, Passage] = {}
        for search in dict.fromkeys([sub_question.text, *proposed.output.queries]):
            for passage in corpus.search(search, limit=8):
                if passage.passage_id not in best or passage.score > best[passage.passage_id].score:
                    best[passage.passage_id] = passage
        candidates = sorted(best.values(), key=lambda p: (-p.score, p.passage_id))[:8]
        judged = source_finder.judge_relevance(
            llm, model=MODEL, sub_question=sub_question.text, candidates=candidates
        ).output
        chosen = set(judged.relevant_passage_ids)
        seen = {source.passage_id for source in sources}
        for passage in [p for p in candidates if p.passage_id in chosen][:4]:
            if passage.passage_id not in seen:
                sources += as_sources([passage], sub_question.id)
                sources[-1] = sources[-1].model_copy(update={"id": f"S{len(sources)}"})
    extracted = analyst.analyse(
        llm, model=MODEL, query=query, sub_questions=sub_questions, sources=sources
    ).output
    claims = claims_from(extracted)
    verdicts = fact_checker.check(llm, model=MODEL, claims=claims, sources=sources).output
    checked = checked_from(claims, verdicts)
    report = writer.write(
        llm, model=MODEL, query=query, claims=checked, sources=sources, sub_questions=sub_questions
    ).output
    return report, sources


def test_end_to_end_report_from_the_sample_corpus(offline: LLMClient, corpus: LocalCorpus) -> None:
    report, sources = research(offline, corpus, QUERY)

    known = {source.id for source in sources}
    assert len(known) == len(sources)
    cited_sections = [
        section for section in report.sections if any(p.source_ids for p in section.paragraphs)
    ]
    assert len(cited_sections) >= 2
    # One section per answered sub-question in plan order; the plan leads with the query.
    assert report.sections[0].heading == "Main findings"
    assert report.sections[-1].heading == "Limits of this report"
    for section in report.sections:
        for paragraph in section.paragraphs:
            assert set(paragraph.source_ids) <= known
    assert "crash" in report.summary.lower()
