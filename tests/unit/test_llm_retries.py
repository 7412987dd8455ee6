"""How LLMClient.structured behaves for each sequence of HTTP outcomes.

Attempt counts come from the respx route, so they also prove the SDK's own retries are off:
with them on, every failing step would be sent several times.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import structlog
from pydantic import BaseModel, Field, SecretStr

from fte import llm as llm_module
from fte.config import load_settings
from fte.errors import (
    LLMAuthError,
    LLMConfigError,
    LLMError,
    LLMOutputError,
    LLMPermanentError,
    LLMQuotaError,
    LLMRequestError,
    LLMTransientError,
)
from fte.llm import LLMClient, LLMConfig
from tests.unit.conftest import API_KEY, ScriptFactory
from tests.unit.fake_openai import Step, api_error, completion, completion_json, request_bodies


class Answer(BaseModel):
    """A tiny output model so the retry tests are about HTTP, not about agents."""

    answer: str = Field(min_length=1)
    confidence: float


VALID = {"answer": "42", "confidence": 0.9}
SYSTEM = "You answer questions."
USER = "What is the answer to the ultimate question?"


def ok(**usage: int) -> httpx.Response:
    return completion_json(VALID, **usage)


def status(code: int, **kwargs: str) -> httpx.Response:
    return api_error(code, headers=kwargs or None)


def rate_limited(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return api_error(
        429,
        message="Rate limit reached",
        code="rate_limit_exceeded",
        type="requests",
        headers=headers,
    )


def out_of_quota() -> httpx.Response:
    return api_error(
        429,
        message="You exceeded your current quota, please check your plan and billing details.",
        code="insufficient_quota",
        type="insufficient_quota",
    )


def ask(llm: LLMClient) -> Answer:
    return llm.structured(
        agent="tester", model="test-model", system=SYSTEM, user=USER, output_model=Answer
    ).output


# Default backoff: 0.5 s, then 1.0 s; Retry-After wins when present, up to 30 s: a longer one
# ends the attempt at once (tests/unit/test_llm_limits.py has the other limits).
CASES = [
    pytest.param([rate_limited("7"), ok()], None, 2, [7.0], id="rate-recovery"),
    pytest.param([rate_limited(), ok()], None, 2, [0.5], id="rate-recovery-without-retry-after"),
    pytest.param([rate_limited("120")], LLMTransientError, 1, [], id="retry-after-too-long"),
    pytest.param([status(500), status(500), ok()], None, 3, [0.5, 1.0], id="server-recovery"),
    pytest.param([status(408), ok()], None, 2, [0.5], id="server-timeout-recovery"),
    pytest.param([status(503), rate_limited("2"), ok()], None, 3, [0.5, 2.0], id="mixed-recovery"),
    pytest.param(
        [status(500), status(500), status(500)],
        LLMTransientError,
        3,
        [0.5, 1.0],
        id="server-exhausted",
    ),
    pytest.param(
        [rate_limited("1") for _ in range(3)], LLMTransientError, 3, [1.0, 1.0], id="rate-exhausted"
    ),
    pytest.param([status(401)], LLMAuthError, 1, [], id="unauthorized-401"),
    pytest.param([status(403)], LLMAuthError, 1, [], id="forbidden-403"),
    pytest.param([status(400)], LLMRequestError, 1, [], id="bad-request-400"),
    pytest.param([status(404)], LLMRequestError, 1, [], id="unknown-model-404"),
    pytest.param([status(422)], LLMRequestError, 1, [], id="unprocessable-422"),
    pytest.param([out_of_quota()], LLMQuotaError, 1, [], id="quota-exhausted"),
    pytest.param([status(500), status(401)], LLMAuthError, 2, [0.5], id="server-then-auth"),
    pytest.param([httpx.ReadTimeout("slow"), ok()], None, 2, [0.5], id="timeout-recovery"),
    pytest.param([httpx.ConnectError("refused"), ok()], None, 2, [0.5], id="connect-recovery"),
    pytest.param(
        [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.ReadTimeout("slow")],
        LLMTransientError,
        3,
        [0.5, 1.0],
        id="network-exhausted",
    ),
    pytest.param(
        [completion("not json"), completion("still not json")],
        LLMOutputError,
        2,
        [],
        id="invalid-json-twice",
    ),
    pytest.param(
        [completion_json({"answer": ""}), completion_json({"answer": "", "confidence": "high"})],
        LLMOutputError,
        2,
        [],
        id="schema-mismatch-twice",
    ),
    pytest.param([completion("not json"), ok()], None, 2, [], id="repair-recovery"),
    pytest.param(
        [completion("not json"), status(500), ok()], None, 3, [0.5], id="repair-after-server-error"
    ),
]


@pytest.mark.parametrize(("steps", "error", "attempts", "expected_sleeps"), CASES)
def test_http_outcomes(
    llm: LLMClient,
    script_openai: ScriptFactory,
    sleeps: list[float],
    steps: Sequence[Step],
    error: type[LLMError] | None,
    attempts: int,
    expected_sleeps: list[float],
) -> None:
    route = script_openai(steps)

    if error is None:
        result = llm.structured(
            agent="tester", model="test-model", system=SYSTEM, user=USER, output_model=Answer
        )
        assert result.output == Answer.model_validate(VALID)
        assert result.http_attempts == attempts
    else:
        with pytest.raises(error) as caught:
            ask(llm)
        assert caught.value.attempts == attempts
        assert (caught.value.agent, caught.value.model) == ("tester", "test-model")
        assert "\n" not in str(caught.value)

    assert route.call_count == attempts
    assert sleeps == expected_sleeps


def test_exhausted_retries_report_last_status_and_are_retryable(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    script_openai([status(500), status(502), status(503)])

    with pytest.raises(LLMTransientError) as caught:
        ask(llm)

    assert caught.value.status_code == 503
    assert caught.value.retryable
    assert "3 HTTP attempts" in str(caught.value)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        pytest.param(status(401), LLMAuthError, id="auth"),
        pytest.param(status(404), LLMRequestError, id="request"),
        pytest.param(out_of_quota(), LLMQuotaError, id="quota"),
    ],
)
def test_permanent_errors_are_not_retryable(
    llm: LLMClient,
    script_openai: ScriptFactory,
    response: httpx.Response,
    error: type[LLMPermanentError],
) -> None:
    script_openai([response])

    with pytest.raises(error) as caught:
        ask(llm)

    assert isinstance(caught.value, LLMPermanentError)
    assert not caught.value.retryable
    assert caught.value.status_code == response.status_code


def test_repair_call_shows_the_model_its_output_and_the_error(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    bad = '{"answer": "42"}'
    route = script_openai(
        [
            completion(bad, prompt_tokens=100, completion_tokens=20),
            ok(prompt_tokens=150, completion_tokens=25),
        ]
    )

    result = llm.structured(
        agent="tester", model="test-model", system=SYSTEM, user=USER, output_model=Answer
    )

    assert result.usage.prompt_tokens == 250
    assert result.usage.completion_tokens == 45
    assert result.usage.calls == 2
    first, repair = request_bodies(route)
    assert repair["messages"][:2] == first["messages"]
    assert repair["messages"][2] == {"role": "assistant", "content": bad}
    assert repair["messages"][3]["role"] == "user"
    assert "confidence" in repair["messages"][3]["content"]
    assert repair["response_format"] == first["response_format"]


def test_output_error_names_the_schema_and_the_problem(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    script_openai([completion("nope"), completion('{"answer": "x"}')])

    with pytest.raises(LLMOutputError) as caught:
        ask(llm)

    message = str(caught.value)
    assert "Answer" in message
    assert "confidence" in message
    assert "\n" not in message


def test_request_uses_json_schema_response_format(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    route = script_openai([ok()])

    ask(llm)

    (body,) = request_bodies(route)
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema(), "strict": False},
    }
    assert route.calls[0].request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_single_call_usage(llm: LLMClient, script_openai: ScriptFactory) -> None:
    script_openai([ok(prompt_tokens=30, completion_tokens=4)])

    result = llm.structured(
        agent="tester", model="test-model", system=SYSTEM, user=USER, output_model=Answer
    )

    assert result.usage.model_dump() == {"prompt_tokens": 30, "completion_tokens": 4, "calls": 1}
    assert result.model == "test-model"


def test_api_key_never_reaches_errors_or_logs(
    llm: LLMClient, script_openai: ScriptFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # Servers that echo the credential back must not get it into our message either.
    script_openai(
        [
            status(500),
            completion("not json"),
            api_error(401, message=f"Incorrect API key provided: {API_KEY}."),
        ]
    )
    caplog.set_level(logging.DEBUG)

    with structlog.testing.capture_logs() as logs, pytest.raises(LLMAuthError) as caught:
        ask(llm)

    assert API_KEY not in str(caught.value)
    assert "Incorrect API key provided: ***" in str(caught.value)
    logged = json.dumps(logs, default=str) + caplog.text
    assert API_KEY not in logged
    assert USER not in json.dumps(logs, default=str)
    assert {entry["event"] for entry in logs} >= {"llm.retry", "llm.repair"}


def test_key_in_the_base_url_never_reaches_errors(
    script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    """A gateway credential in OPENAI_BASE_URL's userinfo, echoed back by the server."""
    gateway_key = "gw-key-0123456789abcdef"
    base_url = f"http://fte:{gateway_key}@gateway.internal/v1"
    script_openai(
        [api_error(403, message=f"key {gateway_key} has no access")],
        url="http://gateway.internal/v1/chat/completions",
    )
    config = LLMConfig(base_url=base_url)
    with (
        httpx.Client() as http_client,
        LLMClient(config, http_client=http_client, sleep=sleeps.append) as llm,
        pytest.raises(LLMAuthError) as caught,
    ):
        ask(llm)
    assert gateway_key not in str(caught.value)
    assert "key *** has no access" in str(caught.value)


def test_success_is_logged_with_tokens_and_attempts(
    llm: LLMClient, script_openai: ScriptFactory
) -> None:
    script_openai([status(503), ok(prompt_tokens=8, completion_tokens=2)])

    with structlog.testing.capture_logs() as logs:
        ask(llm)

    (call,) = [entry for entry in logs if entry["event"] == "llm.call"]
    assert call == {
        "event": "llm.call",
        "log_level": "info",
        "agent": "tester",
        "model": "test-model",
        "http_attempts": 2,
        "prompt_tokens": 8,
        "completion_tokens": 2,
    }


def test_local_server_without_key_gets_a_placeholder(
    script_openai: ScriptFactory, sleeps: list[float]
) -> None:
    base_url = "http://localhost:11434/v1"
    route = script_openai([ok()], url=f"{base_url}/chat/completions")
    config = LLMConfig(base_url=base_url)

    with (
        httpx.Client() as http_client,
        LLMClient(config, http_client=http_client, sleep=sleeps.append) as llm,
    ):
        ask(llm)

    assert route.calls[0].request.headers["Authorization"] == "Bearer not-needed"


def test_no_key_and_no_server_is_a_config_error() -> None:
    with pytest.raises(LLMConfigError, match="OPENAI_API_KEY"):
        LLMClient(LLMConfig())


def test_config_from_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no fte.toml
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:8000/v1")

    config = load_settings().llm_config()

    assert config.api_key == SecretStr(API_KEY)
    assert config.base_url == "http://localhost:8000/v1"
    assert API_KEY not in repr(config)


def test_config_from_settings_treats_blank_as_unset(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    config = load_settings().llm_config()

    assert config.api_key is None
    assert config.base_url is None


def test_unmocked_network_is_refused(sleeps: list[float]) -> None:
    # Without an injected client LLMClient makes its own httpx.Client (never the SDK's
    # httpx2 default, which respx could not see), so the strict router refuses the request.
    config = LLMConfig(api_key=SecretStr(API_KEY), base_url="http://127.0.0.1:9/v1")

    with (
        LLMClient(config, sleep=sleeps.append) as llm,
        pytest.raises(AssertionError, match="not mocked"),
    ):
        ask(llm)


def test_injected_http_client_is_left_open_for_its_owner(sleeps: list[float]) -> None:
    config = LLMConfig(api_key=SecretStr(API_KEY))
    with httpx.Client() as http_client:
        with LLMClient(config, http_client=http_client, sleep=sleeps.append):
            pass

        assert not http_client.is_closed


def test_per_process_work_is_done_once() -> None:
    # Building the output schema (1.5 ms) or a TLS context (~25 ms, the CA bundle) again on
    # every request or client is what these caches are for.
    assert llm_module._json_schema(Answer) is llm_module._json_schema(Answer)
    assert llm_module._tls_context() is llm_module._tls_context()
