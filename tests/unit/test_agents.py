"""Each agent over mocked OpenAI HTTP: what it sends, and what it makes of the reply."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import respx
from pydantic import BaseModel

from fte.agents import analyst, fact_checker, planner, prompting, source_finder, writer
from fte.contracts import CheckedClaim, Claim, Passage, Source, SubQuestion
from fte.errors import PromptError, UsageError
from fte.llm import LLMClient
from tests.unit.conftest import ScriptFactory
from tests.unit.fake_openai import completion_json, request_bodies

MODEL = "gpt-test"
QUERY = "How do heat pumps perform in cold climates?"


def source(number: int, text: str, sub_question_id: str = "q1") -> Source:
    return Source(
        id=f"S{number}",
        passage_id=f"doc{number}#0",
        title=f"Document {number}",
        location=f"corpus/doc{number}.md",
        text=text,
        retrieved_at="2025-01-01T00:00:00Z",
        sub_question_id=sub_question_id,
    )


SOURCES = [
    source(1, "At -15 °C, cold-climate heat pumps kept a COP of 2.1 in the 2023 field trial."),
    source(2, "Defrost cycles cut heating output by up to 10 % in humid cold air.", "q2"),
]


def only_request(route: respx.Route) -> dict[str, Any]:
    (body,) = request_bodies(route)
    return body


def user_message(body: dict[str, Any]) -> str:
    messages = body["messages"]
    assert [message["role"] for message in messages] == ["system", "user"]
    content = messages[1]["content"]
    assert isinstance(content, str)
    return content


def assert_schema(body: dict[str, Any], output_model: type[BaseModel]) -> None:
    assert body["model"] == MODEL
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": output_model.__name__,
            "schema": output_model.model_json_schema(),
            "strict": False,
        },
    }


def test_planner(llm: LLMClient, script_openai: ScriptFactory) -> None:
    reply = {
        "sub_questions": [
            "What efficiency do heat pumps reach below -10 °C?",
            "How does defrosting affect heat pump output?",
            "Which heat pump designs are rated for cold climates?",
        ],
        "rationale": "Efficiency, defrost losses and designs cover cold-climate performance.",
    }
    route = script_openai([completion_json(reply)])

    result = planner.plan(llm, model=MODEL, query=QUERY, max_sub_questions=5)

    assert result.output == planner.PlannerOutput.model_validate(reply)
    body = only_request(route)
    assert_schema(body, planner.PlannerOutput)
    user = user_message(body)
    assert QUERY in user
    assert "between 3 and 5 sub-questions" in user


def test_planner_enforces_a_smaller_cap(llm: LLMClient, script_openai: ScriptFactory) -> None:
    questions = [f"Question {n} about heat pumps?" for n in range(1, 7)]
    script_openai([completion_json({"sub_questions": questions, "rationale": "r"})])

    result = planner.plan(llm, model=MODEL, query=QUERY, max_sub_questions=4)

    assert result.output.sub_questions == questions[:4]
    assert result.usage.calls == 1


@pytest.mark.parametrize("cap", [2, 9])
def test_planner_rejects_a_cap_outside_the_schema(llm: LLMClient, cap: int) -> None:
    # No route is scripted: reaching HTTP at all would fail the test.
    with pytest.raises(UsageError, match="max_sub_questions"):
        planner.plan(llm, model=MODEL, query=QUERY, max_sub_questions=cap)


def test_planner_output_too_few_questions_is_repaired(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    too_few = {"sub_questions": ["Only one?"], "rationale": "r"}
    enough = {"sub_questions": ["A?", "B?", "C?"], "rationale": "r"}
    route = script_openai([completion_json(too_few), completion_json(enough)])

    result = planner.plan(llm, model=MODEL, query=QUERY)

    assert result.output.sub_questions == ["A?", "B?", "C?"]
    assert route.call_count == 2


def test_source_finder_proposes_queries(llm: LLMClient, script_openai: ScriptFactory) -> None:
    sub_question = "What COP do heat pumps reach at -15 °C?"
    reply = {"queries": ["heat pump COP -15 °C", "cold climate heat pump field trial"]}
    route = script_openai([completion_json(reply)])

    result = source_finder.propose_queries(llm, model=MODEL, sub_question=sub_question)

    assert result.output.queries == reply["queries"]
    body = only_request(route)
    assert_schema(body, source_finder.SearchQueries)
    assert sub_question in user_message(body)


def test_source_finder_judges_candidates(llm: LLMClient, script_openai: ScriptFactory) -> None:
    candidates = [
        Passage(passage_id="trial#3", title="Field trial", location="a.md", text="COP of 2.1."),
        Passage(passage_id="ads#1", title="Brochure", location="b.md", text="Buy now!"),
    ]
    reply = {"relevant_passage_ids": ["trial#3"], "notes": ""}
    route = script_openai([completion_json(reply)])

    result = source_finder.judge_relevance(
        llm, model=MODEL, sub_question="What COP at -15 °C?", candidates=candidates
    )

    assert result.output.relevant_passage_ids == ["trial#3"]
    body = only_request(route)
    assert_schema(body, source_finder.RelevanceJudgement)
    user = user_message(body)
    assert "What COP at -15 °C?" in user
    for passage in candidates:
        assert f'passage_id="{passage.passage_id}"' in user
        assert passage.title in user
        assert passage.text in user


def test_analyst(llm: LLMClient, script_openai: ScriptFactory) -> None:
    sub_questions = [
        SubQuestion(id="q1", text="What efficiency at -15 °C?"),
        SubQuestion(id="q2", text="How much does defrosting cost?"),
    ]
    reply = {
        "claims": [
            {
                "text": "Cold-climate heat pumps kept a COP of 2.1 at -15 °C in a 2023 trial.",
                "source_ids": ["S1"],
                "sub_question_id": "q1",
            },
            {"text": "Defrosting cuts output by up to 10 %.", "source_ids": ["S2"]},
        ],
        "summary": "Efficiency holds up; defrost losses are modest.",
    }
    route = script_openai([completion_json(reply)])

    result = analyst.analyse(
        llm, model=MODEL, query=QUERY, sub_questions=sub_questions, sources=SOURCES
    )

    assert result.output == analyst.AnalystOutput.model_validate(reply)
    assert result.output.claims[1].sub_question_id is None
    body = only_request(route)
    assert_schema(body, analyst.AnalystOutput)
    user = user_message(body)
    assert QUERY in user
    assert "q1: What efficiency at -15 °C?" in user
    for s in SOURCES:
        assert f'<source id="{s.id}">' in user
        assert s.text in user


def test_analyst_claim_without_sources_is_invalid(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    uncited = {"claims": [{"text": "Heat pumps are great.", "source_ids": []}], "summary": "s"}
    cited = {"claims": [{"text": "COP 2.1 at -15 °C.", "source_ids": ["S1"]}], "summary": "s"}
    route = script_openai([completion_json(uncited), completion_json(cited)])

    result = analyst.analyse(llm, model=MODEL, query=QUERY, sub_questions=[], sources=SOURCES)

    assert result.output.claims[0].source_ids == ["S1"]
    assert route.call_count == 2


def test_fact_checker_shows_each_claim_only_its_cited_sources(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    claims = [
        Claim(id="C1", text="COP of 2.1 at -15 °C.", source_ids=["S1"]),
        Claim(id="C2", text="Defrosting cuts output by 50 %.", source_ids=["S2", "S9"]),
    ]
    reply = {
        "verdicts": [
            {
                "claim_id": "C1",
                "verdict": "supported",
                "evidence": "kept a COP of 2.1",
                "evidence_source_id": "S1",
            },
            {
                "claim_id": "C2",
                "verdict": "contradicted",
                "evidence": "by up to 10 %",
                "evidence_source_id": "S2",
            },
        ]
    }
    route = script_openai([completion_json(reply)])

    result = fact_checker.check(llm, model=MODEL, claims=claims, sources=SOURCES)

    assert [v.verdict for v in result.output.verdicts] == ["supported", "contradicted"]
    body = only_request(route)
    assert_schema(body, fact_checker.FactCheckOutput)
    blocks = user_message(body).split("<claim ")[1:]
    assert len(blocks) == 2
    c1, c2 = blocks
    assert claims[0].text in c1
    assert SOURCES[0].text in c1
    assert SOURCES[1].text not in c1
    assert claims[1].text in c2
    assert SOURCES[1].text in c2
    assert SOURCES[0].text not in c2
    # A cited source that was never retrieved is shown as missing, not silently dropped.
    assert '<source id="S9">' in c2
    assert "not available" in c2


def test_fact_checker_unsupported_defaults(llm: LLMClient, script_openai: ScriptFactory) -> None:
    claims = [Claim(id="C1", text="Heat pumps work on Mars.", source_ids=["S1"])]
    script_openai([completion_json({"verdicts": [{"claim_id": "C1", "verdict": "unsupported"}]})])

    result = fact_checker.check(llm, model=MODEL, claims=claims, sources=SOURCES)

    (verdict,) = result.output.verdicts
    assert (verdict.evidence, verdict.evidence_source_id) == ("", None)


def test_writer(llm: LLMClient, script_openai: ScriptFactory) -> None:
    checked = [
        CheckedClaim(
            claim=Claim(
                id="C1", text="COP of 2.1 at -15 °C.", source_ids=["S1"], sub_question_id="q2"
            ),
            verdict="supported",
            evidence="kept a COP of 2.1",
            evidence_source_id="S1",
        ),
        CheckedClaim(
            claim=Claim(id="C2", text="Defrosting halves output.", source_ids=["S2"]),
            verdict="contradicted",
            evidence="by up to 10 %",
            evidence_source_id="S2",
        ),
    ]
    reply = {
        "title": "Cold-climate heat pumps stay efficient",
        "summary": "They keep a COP above 2 at -15 °C.",
        "sections": [
            {
                "heading": "Efficiency in the cold",
                "paragraphs": [
                    {
                        "text": "A 2023 field trial measured a COP of 2.1 at -15 °C.",
                        "claim_ids": ["C1"],
                        "source_ids": ["S1"],
                    }
                ],
            }
        ],
    }
    sub_questions = [
        SubQuestion(id="q1", text="How does defrosting affect heat pump output?"),
        SubQuestion(id="q2", text="What efficiency do heat pumps reach below -10 °C?"),
    ]
    route = script_openai([completion_json(reply)])

    result = writer.write(
        llm, model=MODEL, query=QUERY, claims=checked, sources=SOURCES, sub_questions=sub_questions
    )

    assert result.output == writer.WriterOutput.model_validate(reply)
    body = only_request(route)
    assert_schema(body, writer.WriterOutput)
    user = user_message(body)
    assert QUERY in user
    # The plan in its order, so the writer can follow it; each claim names its sub-question.
    assert (
        "- q1: How does defrosting affect heat pump output?\n"
        "- q2: What efficiency do heat pumps reach below -10 °C?\n"
    ) in user
    assert '<claim id="C1" verdict="supported" sources="S1" sub_question="q2">' in user
    assert '<claim id="C2" verdict="contradicted" sources="S2" sub_question="">' in user
    assert 'evidence from S2: "by up to 10 %"' in user
    for s in SOURCES:
        assert f"- {s.id}: {s.title}" in user


def test_writer_without_a_plan(llm: LLMClient, script_openai: ScriptFactory) -> None:
    checked = [
        CheckedClaim(
            claim=Claim(id="C1", text="COP of 2.1 at -15 °C.", source_ids=["S1"]),
            verdict="supported",
            evidence="kept a COP of 2.1",
        )
    ]
    reply = {
        "title": "Cold-climate heat pumps",
        "summary": "A COP of 2.1 at -15 °C.",
        "sections": [
            {
                "heading": "Efficiency",
                "paragraphs": [{"text": "COP 2.1.", "claim_ids": ["C1"], "source_ids": ["S1"]}],
            }
        ],
    }
    route = script_openai([completion_json(reply)])

    writer.write(llm, model=MODEL, query=QUERY, claims=checked, sources=SOURCES)

    user = user_message(only_request(route))
    assert "Sub-questions of the research plan, in order:\n(none)\n" in user
    assert '<claim id="C1" verdict="supported" sources="S1" sub_question="">' in user


def test_all_prompts_load_with_their_fields() -> None:
    expected = {
        planner.PROMPT_NAME: {"query", "max_sub_questions"},
        source_finder.QUERIES_PROMPT_NAME: {"sub_question"},
        source_finder.RELEVANCE_PROMPT_NAME: {"sub_question", "candidates"},
        analyst.PROMPT_NAME: {"query", "sub_questions", "sources"},
        fact_checker.PROMPT_NAME: {"claims"},
        writer.PROMPT_NAME: {"query", "sub_questions", "claims", "sources"},
    }
    for name, fields in expected.items():
        system, user = prompting.load_prompt(name)
        assert system, name
        rendered = prompting.render(user, **{field: f"<<{field}>>" for field in fields})
        assert all(f"<<{field}>>" in rendered for field in fields), name


def test_render_missing_field_fails_clearly() -> None:
    with pytest.raises(PromptError, match="needs field\\(s\\) audience"):
        prompting.render("Answer {query} for {audience}.", query="q")


def test_render_unused_field_fails_clearly() -> None:
    with pytest.raises(PromptError, match="no field\\(s\\) audience"):
        prompting.render("Answer {query}.", query="q", audience="experts")


def test_render_leaves_other_braces_and_values_alone() -> None:
    rendered = prompting.render('Reply like {"a": 1}. Query: {query}', query="why {sources}?")

    assert rendered == 'Reply like {"a": 1}. Query: why {sources}?'


def write_prompt(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.md").write_text(text, encoding="utf-8")


def test_agent_with_a_broken_prompt_file_fails_before_any_request(
    llm: LLMClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_prompt(
        tmp_path,
        planner.PROMPT_NAME,
        "## System\nPlan.\n## User\n{query} for {audience}, at most {max_sub_questions}.\n",
    )
    monkeypatch.setattr(prompting, "PROMPTS_DIR", tmp_path)

    # No route is scripted: a request would fail the test on its own.
    with pytest.raises(PromptError, match="audience"):
        planner.plan(llm, model=MODEL, query=QUERY)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param("Just text, no headings.", "'## System' heading", id="no-headings"),
        pytest.param("## User\nu\n## System\ns\n", "'## System' heading", id="wrong-order"),
        pytest.param("## System\n\n## User\nu\n", "must not be empty", id="empty-system"),
        pytest.param("## System\nHi {query}\n## User\nu\n", "query in '## System'", id="field"),
    ],
)
def test_malformed_prompt_files_fail_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str
) -> None:
    write_prompt(tmp_path, "broken", text)
    monkeypatch.setattr(prompting, "PROMPTS_DIR", tmp_path)

    with pytest.raises(PromptError, match=problem):
        prompting.load_prompt("broken")


def test_missing_prompt_file_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prompting, "PROMPTS_DIR", tmp_path)

    with pytest.raises(PromptError, match="nowhere.md"):
        prompting.load_prompt("nowhere")
