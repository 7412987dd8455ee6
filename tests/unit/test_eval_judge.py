"""The judge suite's request (stable across runs) and its record/replay, over mocked HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from fte.evals import e2e, judge
from fte.evals.cassettes import Cassette, Recorder
from fte.llm import LLMClient, LLMConfig
from tests.unit.fake_openai import completion

BASE_URL = "https://judge.example.test/v1"
CASE = e2e.E2ECase(
    id="t",
    corpus="examples",
    query="How do timers survive restarts?",
    facts=[e2e.KeyFact(fact="f", match=[["timer"]])],
)
VERDICT = {
    c: {"score": n, "reason": f"{c} reason"}
    for c, n in zip(judge.CRITERIA, (7, 5, 9, 8), strict=True)
}


def _report(text: str = "Durable timers fire after a restart.") -> dict[str, Any]:
    claim = {"id": "C1", "text": text, "source_ids": ["S1"], "sub_question_id": "q1"}
    return {
        "title": "Timers",
        "summary": "Timers survive.",
        "sections": [
            {
                "heading": "H",
                "paragraphs": [{"text": text, "claim_ids": ["C1"], "source_ids": ["S1"]}],
            }
        ],
        "sources": [
            {
                "number": 1,
                "id": "S1",
                "title": "Durable timers",
                "location": "/somewhere/timers.md",
                "retrieved_at": "2030-01-01T00:00:00+00:00",
                "passage_id": "p1",
            }
        ],
        "claims": [{"claim": claim, "verdict": "supported", "evidence": text}],
    }


def test_the_judge_sees_the_report_without_what_changes_between_runs() -> None:
    system, user = judge.judge_prompt(CASE.query, _report())
    assert "faithfulness" in system
    assert "Durable timers fire after a restart. [1]" in user
    assert '[C1] Durable timers fire after a restart.\n  evidence: "Durable' in user
    assert "2030-01-01" not in user and "/somewhere" not in user


def test_a_recorded_verdict_replays_and_a_changed_report_fails_loudly(
    http_mock: respx.MockRouter, tmp_path: Path
) -> None:
    http_mock.post(BASE_URL + "/chat/completions").mock(
        return_value=completion(json.dumps(VERDICT))
    )
    recorder = Recorder(httpx.HTTPTransport(), base_url=BASE_URL, corpus_root=tmp_path)
    config = LLMConfig(base_url=BASE_URL, api_key=SecretStr("sk-judge-test-0123456789"))
    with LLMClient(config, http_client=httpx.Client(transport=recorder)) as client:
        recorded = judge._ask(client, "judge-model", CASE.query, _report())
    cassette = Cassette(
        case="t",
        recorded_with="test",
        models={judge.NAME: "judge-model"},
        interactions=recorder.interactions,
    )

    assert judge.replay(CASE, _report(), cassette) == recorded
    assert recorded.faithfulness.score == 9
    with pytest.raises(e2e.CassetteMismatch, match="re-record"):
        judge.replay(CASE, _report("Durable timers never fire."), cassette)
