"""LLMClient's limits: a total deadline per request and per attempt, Retry-After, answer size.

A server may keep a call alive for ever by sending a byte now and then (each byte resets a
read timeout), ask us to wait an hour, or answer with megabytes. None of those may hang an
activity, sleep it for an hour, or be retried into a raw gRPC error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import httpx
import pytest
from pydantic import BaseModel

from fte.config import load_settings
from fte.errors import (
    LLMDeadlineError,
    LLMPermanentError,
    LLMResponseTooLargeError,
    LLMTransientError,
)
from fte.llm import LLMClient, LLMConfig
from tests.unit.conftest import API_KEY, ScriptFactory
from tests.unit.fake_openai import api_error, completion, completion_json


class MakeLLM(Protocol):
    def __call__(self, **settings: float) -> LLMClient: ...


class Answer(BaseModel):
    answer: str


def ask(llm: LLMClient) -> Answer:
    return llm.structured(
        agent="tester", model="test-model", system="s", user="u", output_model=Answer
    ).output


@pytest.fixture
def make_llm(sleeps: list[float]) -> Iterator[MakeLLM]:
    clients: list[tuple[httpx.Client, LLMClient]] = []

    def build(**settings: float) -> LLMClient:
        http_client = httpx.Client()
        client = LLMClient(
            LLMConfig.model_validate({"api_key": API_KEY, **settings}),
            http_client=http_client,
            sleep=sleeps.append,
        )
        clients.append((http_client, client))
        return client

    yield build
    for http_client, client in clients:
        client.close()
        http_client.close()


def rate_limited(retry_after: str) -> httpx.Response:
    return api_error(429, code="rate_limit_exceeded", headers={"Retry-After": retry_after})


@pytest.mark.parametrize(
    ("retry_after", "settings", "reason"),
    [
        pytest.param("3600", {}, "asked to wait 3600 s", id="beyond-max-retry-after"),
        pytest.param(
            "20",
            {"max_retry_after_s": 60, "attempt_deadline_s": 5},
            "attempt deadline",
            id="beyond-attempt-deadline",
        ),
    ],
)
def test_retry_after_beyond_the_limits_fails_the_attempt_without_sleeping(
    make_llm: MakeLLM,
    script_openai: ScriptFactory,
    sleeps: list[float],
    retry_after: str,
    settings: dict[str, float],
    reason: str,
) -> None:
    route = script_openai([rate_limited(retry_after)])

    with pytest.raises(LLMTransientError) as caught:
        ask(make_llm(**settings))

    assert route.call_count == 1
    assert sleeps == []
    assert reason in str(caught.value)
    assert caught.value.status_code == 429
    assert "\n" not in str(caught.value)


def test_retry_after_within_the_limits_is_honoured(
    make_llm: MakeLLM, script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    route = script_openai([rate_limited("12"), completion_json({"answer": "42"})])

    assert ask(make_llm(max_retry_after_s=30)).answer == "42"

    assert route.call_count == 2
    assert sleeps == [12.0]


def test_backoff_that_would_overrun_the_attempt_deadline_fails_the_attempt(
    make_llm: MakeLLM, script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    route = script_openai([api_error(503)])

    with pytest.raises(LLMTransientError, match="attempt deadline"):
        ask(make_llm(backoff_base_s=5, attempt_deadline_s=2))

    assert route.call_count == 1
    assert sleeps == []


FIVE_MB = "x" * 5_000_000


class _Chunks(httpx.SyncByteStream):
    """A body without Content-Length, counting how much of it the client pulled."""

    def __init__(self, chunks: Iterator[bytes], *, delay_s: float = 0.0) -> None:
        self._chunks = chunks
        self._delay_s = delay_s
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            if self._delay_s:
                time.sleep(self._delay_s)
            self.pulled += 1
            yield chunk


def _endless(prefix: bytes) -> Iterator[bytes]:
    yield prefix
    while True:
        yield b" "


@pytest.mark.parametrize(
    "chunked", [pytest.param(False, id="content-length"), pytest.param(True, id="chunked")]
)
def test_an_oversized_answer_is_refused_once_and_not_retried(
    make_llm: MakeLLM, script_openai: ScriptFactory, sleeps: list[float], chunked: bool
) -> None:
    stream = _Chunks(iter([b"x" * 65536] * 100))  # 6.5 MB
    response = httpx.Response(200, stream=stream) if chunked else completion(FIVE_MB)
    route = script_openai([response])

    with pytest.raises(LLMResponseTooLargeError) as caught:
        ask(make_llm(max_response_bytes=1_000_000))

    assert isinstance(caught.value, LLMPermanentError)
    assert not caught.value.retryable
    assert route.call_count == 1
    assert sleeps == []
    message = str(caught.value)
    assert "1,000,000 bytes" in message and "FTE_LLM_MAX_RESPONSE_BYTES" in message
    assert "\n" not in message
    if chunked:
        assert stream.pulled <= 17  # stopped reading soon after the limit, not at 6.5 MB


def test_an_answer_under_the_size_limit_is_accepted(
    make_llm: MakeLLM, script_openai: ScriptFactory
) -> None:
    script_openai([completion_json({"answer": "y" * 10_000})])

    assert len(ask(make_llm(max_response_bytes=100_000)).answer) == 10_000


def test_a_trickling_body_is_cut_off_at_the_request_deadline(
    make_llm: MakeLLM, script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    # One byte every 20 ms for ever: each byte would reset a read timeout.
    trickle = _Chunks(_endless(b'{"id": "x", '), delay_s=0.02)
    script_openai([httpx.Response(200, stream=trickle)])
    llm = make_llm(request_deadline_s=0.3, attempt_deadline_s=0.3)

    started = time.monotonic()
    with pytest.raises(LLMDeadlineError) as caught:
        ask(llm)
    elapsed = time.monotonic() - started

    assert 0.3 <= elapsed < 0.8
    assert isinstance(caught.value, LLMTransientError)
    assert caught.value.attempts == 1
    assert "0.3 s" in str(caught.value)


def test_each_request_gets_its_own_deadline_within_the_attempt(
    make_llm: MakeLLM, script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    # The first request trickles past its own deadline; the retry inside the same attempt
    # succeeds, because the attempt's deadline is longer.
    trickle = _Chunks(_endless(b"{"), delay_s=0.02)
    route = script_openai([httpx.Response(200, stream=trickle), completion_json({"answer": "42"})])
    llm = make_llm(request_deadline_s=0.2, attempt_deadline_s=5)

    assert ask(llm).answer == "42"
    assert route.call_count == 2
    assert sleeps == [0.5]


def test_limits_come_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FTE_LLM_REQUEST_DEADLINE_S", "45")
    monkeypatch.setenv("FTE_LLM_ATTEMPT_DEADLINE_S", "90")
    monkeypatch.setenv("FTE_LLM_MAX_RETRY_AFTER_S", "10")
    monkeypatch.setenv("FTE_LLM_MAX_RESPONSE_BYTES", "2000")

    config = load_settings().llm_config()

    assert (config.request_deadline_s, config.attempt_deadline_s) == (45, 90)
    assert (config.max_retry_after_s, config.max_response_bytes) == (10, 2000)


def test_defaults_are_finite() -> None:
    config = LLMConfig()
    assert 0 < config.request_deadline_s <= config.attempt_deadline_s < 3600
    assert 0 < config.max_retry_after_s < config.attempt_deadline_s
    assert 0 < config.max_response_bytes < 4 * 1024 * 1024  # under gRPC's message limit
