"""The evaluation's model-server transports: the offline model over HTTP, scripted faults,
and cassettes (record, replay byte for byte, fail loudly on a miss). Offline, respx."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from fte.agents import offline_model, planner
from fte.errors import LLMAuthError, LLMRequestError
from fte.evals.cassettes import CORPUS_PLACEHOLDER, Cassette, Player, Recorder
from fte.evals.transports import Fault, FaultInjector, ModelServer, Switchboard
from fte.llm import LLMClient, LLMConfig
from tests.unit.fake_openai import completion

BASE_URL = "https://models.example.test/v1"
CHAT_URL = BASE_URL + "/chat/completions"
KEY = "sk-eval-test-0123456789abcdef"
ClientOf = Callable[[httpx.BaseTransport], LLMClient]
PLAN = planner.PlannerInput(query="How do durable timers survive restarts?", max_sub_questions=3)


@pytest.fixture
def client_of() -> Iterator[ClientOf]:
    clients: list[LLMClient] = []

    def make(transport: httpx.BaseTransport) -> LLMClient:
        config = LLMConfig(base_url=BASE_URL, api_key=SecretStr(KEY), backoff_base_s=0.001)
        client = LLMClient(config, http_client=httpx.Client(transport=transport))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _ask(client: LLMClient, query: str = PLAN.query) -> planner.Plan:
    inputs = PLAN.model_copy(update={"query": query})
    return planner.AGENT.run(client, "m", inputs).result


def test_the_offline_model_served_over_http_answers_like_in_process(client_of: ClientOf) -> None:
    over_http = _ask(client_of(ModelServer(offline_model())))
    assert over_http == planner.AGENT.run(offline_model(), "m", PLAN).result


def test_faults_answer_in_order_then_the_model_does(client_of: ClientOf) -> None:
    injector = FaultInjector(
        ModelServer(offline_model()),
        {"planner": [Fault(kind="status", status=503), Fault(kind="timeout")]},
    )
    _ask(client_of(injector))
    assert injector.requests == {"planner": 3}


def test_an_auth_failure_is_one_request(client_of: ClientOf) -> None:
    injector = FaultInjector(
        ModelServer(offline_model()), {"planner": [Fault(kind="status", status=401)]}
    )
    with pytest.raises(LLMAuthError):
        _ask(client_of(injector))
    assert injector.requests == {"planner": 1}


def test_the_switchboard_refuses_requests_between_cases() -> None:
    board = Switchboard()
    request = httpx.Request("POST", CHAT_URL, content=b"{}")
    assert board.handle_request(request).status_code == 503
    with board.serving(httpx.MockTransport(lambda r: httpx.Response(204))):
        assert board.handle_request(request).status_code == 204


# -- cassettes ---------------------------------------------------------------------------


def _record(
    client_of: ClientOf, http_mock: respx.MockRouter, corpus: Path, answer: str
) -> Cassette:
    http_mock.post(CHAT_URL).mock(
        side_effect=[
            httpx.Response(429, json={"error": {"message": "slow down"}}),
            completion(answer),
        ]
    )
    recorder = Recorder(httpx.HTTPTransport(), base_url=BASE_URL, corpus_root=corpus, secrets=[KEY])
    _ask(client_of(recorder), query=f"What is in {corpus}/timers.md?")
    return Cassette(
        case="c1",
        recorded_with="test server",
        models={"planner": "m"},
        interactions=recorder.interactions,
    )


def _plan_json(extra: str = "") -> str:
    plan = {"sub_questions": ["a?", "b?", "c?"], "rationale": "because" + extra}
    return json.dumps(plan)


def test_a_recording_replays_byte_for_byte_from_another_corpus_root(
    client_of: ClientOf, http_mock: respx.MockRouter, tmp_path: Path
) -> None:
    recorded_root, other_root = tmp_path / "here", tmp_path / "there"
    cassette = _record(client_of, http_mock, recorded_root, _plan_json(f" {KEY}"))
    # The retried 429 is kept; no header, key or corpus path is.
    assert [i.response.status for i in cassette.interactions] == [429, 200]
    text = cassette.model_dump_json()
    assert KEY not in text and str(recorded_root) not in text and CORPUS_PLACEHOLDER in text
    path = tmp_path / "c1.json.gz"
    cassette.save(path)
    assert KEY.encode() not in gzip.decompress(path.read_bytes())

    player = Player(Cassette.load(path), base_url=BASE_URL, corpus_root=other_root)
    plan = _ask(client_of(player), query=f"What is in {other_root}/timers.md?")
    assert [q.text for q in plan.sub_questions] == ["a?", "b?", "c?"]
    assert player.misses == [] and player.unused() == []


def test_a_request_not_in_the_cassette_fails_at_once_and_is_described(
    client_of: ClientOf, http_mock: respx.MockRouter, tmp_path: Path
) -> None:
    cassette = _record(client_of, http_mock, tmp_path, _plan_json())
    player = Player(cassette, base_url=BASE_URL, corpus_root=tmp_path)
    with pytest.raises(LLMRequestError):  # a 400: permanent, so no retry hides the miss
        _ask(client_of(player), query="Something never recorded?")
    (miss,) = player.misses
    assert miss.startswith("planner: request differs") and "Something never" in miss
    assert len(player.unused()) == 2
