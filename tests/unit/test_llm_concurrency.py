"""The per-worker cap on model requests in flight (`LLMConfig.max_concurrent_requests`).

Activities run on many threads so that parallel sub-questions do not wait for one another;
the model server still sees at most the configured number of requests at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import respx
from pydantic import BaseModel, SecretStr

from fte.config import load_settings
from fte.errors import UsageError
from fte.llm import LLMClient, LLMConfig
from tests.unit.conftest import API_KEY
from tests.unit.fake_openai import completion_json

OPENAI_CHAT_URL = "https://api.openai.com/v1/chat/completions"


class Answer(BaseModel):
    answer: str


class Server:
    """Holds every request until released, counting how many are in flight at once."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.served = 0
        self.changed = threading.Condition()
        self.release = threading.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.changed:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.changed.notify_all()
        assert self.release.wait(timeout=30), "the test never released the requests"
        with self.changed:
            self.in_flight -= 1
            self.served += 1
        return completion_json({"answer": "ok"})


@pytest.mark.parametrize("cap", [1, 3])
def test_no_more_requests_in_flight_than_the_cap(http_mock: respx.MockRouter, cap: int) -> None:
    server = Server()
    http_mock.post(OPENAI_CHAT_URL).mock(side_effect=server)
    calls = cap + 4
    config = LLMConfig(api_key=SecretStr(API_KEY), max_concurrent_requests=cap)
    with (
        httpx.Client() as http_client,
        LLMClient(config, http_client=http_client) as llm,
        ThreadPoolExecutor(max_workers=calls) as pool,
    ):
        futures = [
            pool.submit(
                llm.structured,
                agent="tester",
                model="m",
                system="s",
                user=f"u{i}",
                output_model=Answer,
            )
            for i in range(calls)
        ]
        with server.changed:
            assert server.changed.wait_for(lambda: server.in_flight == cap, timeout=30)
            # Every other call is queued by now or soon; give one the chance to slip past.
            server.changed.wait_for(lambda: server.in_flight > cap, timeout=0.3)
        server.release.set()
        answers = [f.result(timeout=30).output.answer for f in futures]

    assert answers == ["ok"] * calls
    assert server.served == calls
    assert server.most == cap


def test_the_cap_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTE_LLM_MAX_CONCURRENT_REQUESTS", "4")
    assert load_settings({}).llm_config().max_concurrent_requests == 4
    monkeypatch.setenv("FTE_LLM_MAX_CONCURRENT_REQUESTS", "0")
    with pytest.raises(UsageError, match="FTE_LLM_MAX_CONCURRENT_REQUESTS"):
        load_settings({})
