"""Cost estimates: exact arithmetic for known models, `None` (never a guess) for unknown ones."""

from __future__ import annotations

import re

import pytest

from fte.contracts import OFFLINE_MODEL, AgentModels, TokenUsage
from fte.errors import UsageError
from fte.pricing import (
    KNOWN_PRICES,
    PRICES_ENV,
    Price,
    estimate_cost,
    estimate_run_cost,
    format_cost,
    load_prices,
    price_of,
)

MILLION = 1_000_000


@pytest.fixture(autouse=True)
def no_price_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own FTE_PRICES must not change what these tests see."""
    monkeypatch.delenv(PRICES_ENV, raising=False)


def usage(prompt: int, completion: int, calls: int = 1) -> TokenUsage:
    return TokenUsage(prompt_tokens=prompt, completion_tokens=completion, calls=calls)


def test_known_model_cost_is_tokens_times_price_per_million() -> None:
    price = KNOWN_PRICES["gpt-4o-mini"]
    cost = estimate_cost("gpt-4o-mini", usage(2_000_000, 500_000))
    assert cost == pytest.approx(2 * price.input + 0.5 * price.output)


def test_input_and_output_tokens_are_priced_separately() -> None:
    price = KNOWN_PRICES["gpt-4.1"]
    assert estimate_cost("gpt-4.1", usage(MILLION, 0)) == pytest.approx(price.input)
    assert estimate_cost("gpt-4.1", usage(0, MILLION)) == pytest.approx(price.output)
    assert estimate_cost("gpt-4.1", usage(0, 0)) == 0.0


@pytest.mark.parametrize(
    ("model", "base"),
    [
        pytest.param("gpt-4o-mini-2024-07-18", "gpt-4o-mini", id="4o-mini-snapshot"),
        pytest.param("gpt-4o-2024-08-06", "gpt-4o", id="4o-snapshot"),
        pytest.param("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", id="4.1-nano-snapshot"),
        pytest.param("o3-mini-2025-01-31", "o3-mini", id="o3-mini-snapshot"),
    ],
)
def test_dated_snapshot_is_priced_as_its_base_model(model: str, base: str) -> None:
    assert price_of(model) == KNOWN_PRICES[base]
    assert estimate_cost(model, usage(1234, 567)) == estimate_cost(base, usage(1234, 567))


@pytest.mark.parametrize(
    "model",
    [
        pytest.param("llama3.1:8b", id="local-model"),
        pytest.param("GPT-4O-MINI", id="different-case"),
        pytest.param("gpt-4o-mini-latest", id="undated-suffix"),
        pytest.param("my-model-2024-07-18", id="snapshot-of-unknown"),
        pytest.param("openai/gpt-4o-mini", id="provider-prefix"),
        pytest.param("", id="empty"),
    ],
)
def test_unknown_model_has_unknown_cost(model: str) -> None:
    assert price_of(model) is None
    assert estimate_cost(model, usage(1000, 1000)) is None


def test_offline_model_is_free() -> None:
    assert estimate_cost(OFFLINE_MODEL, usage(10 * MILLION, 10 * MILLION, calls=40)) == 0.0


def test_run_cost_sums_the_agents() -> None:
    models = AgentModels(planner="gpt-4o", writer="gpt-4.1-mini")  # the rest gpt-4o-mini
    by_agent = {"planner": usage(MILLION, 0), "writer": usage(0, MILLION), "analyst": usage(0, 0)}

    total, per_agent = estimate_run_cost(models, by_agent)

    assert per_agent == {
        "planner": pytest.approx(KNOWN_PRICES["gpt-4o"].input),
        "writer": pytest.approx(KNOWN_PRICES["gpt-4.1-mini"].output),
        "analyst": 0.0,
    }
    assert total == pytest.approx(
        KNOWN_PRICES["gpt-4o"].input + KNOWN_PRICES["gpt-4.1-mini"].output
    )


def test_run_total_is_unknown_when_any_agent_that_used_tokens_is_unpriced() -> None:
    models = AgentModels(fact_checker="local-llama")
    by_agent = {"planner": usage(1000, 100), "fact_checker": usage(5000, 200)}

    total, per_agent = estimate_run_cost(models, by_agent)

    assert total is None
    assert per_agent["fact_checker"] is None
    assert per_agent["planner"] == estimate_cost("gpt-4o-mini", usage(1000, 100))


def test_unpriced_agent_that_made_calls_without_reported_tokens_is_still_unknown() -> None:
    # A server that reports no token counts still ran the calls: the cost is not known to be 0.
    total, _ = estimate_run_cost(AgentModels(writer="local"), {"writer": usage(0, 0, calls=3)})
    assert total is None


def test_unpriced_agent_that_did_nothing_does_not_hide_the_total() -> None:
    models = AgentModels(writer="local-llama")
    total, per_agent = estimate_run_cost(
        models, {"planner": usage(MILLION, 0), "writer": usage(0, 0, calls=0)}
    )
    assert per_agent["writer"] is None
    assert total == pytest.approx(KNOWN_PRICES["gpt-4o-mini"].input)


def test_agent_without_a_configured_model_is_unpriced() -> None:
    total, per_agent = estimate_run_cost(AgentModels(), {"summariser": usage(10, 10)})
    assert per_agent == {"summariser": None}
    assert total is None


def test_offline_run_costs_nothing() -> None:
    models = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))
    by_agent = {agent: usage(40_000, 3_000, calls=5) for agent in AgentModels.model_fields}
    total, per_agent = estimate_run_cost(models, by_agent)
    assert total == 0.0
    assert set(per_agent.values()) == {0.0}


def test_env_override_prices_an_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, '{"my-model": [0.5, 1.5]}')
    assert price_of("my-model") == Price(input=0.5, output=1.5)
    assert estimate_cost("my-model", usage(2 * MILLION, MILLION)) == pytest.approx(2.5)
    assert estimate_cost("my-model-2025-02-03", usage(MILLION, 0)) == pytest.approx(0.5)


def test_env_override_replaces_a_built_in_price(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, '{"gpt-4o-mini": [1, 2]}')
    assert estimate_cost("gpt-4o-mini", usage(MILLION, MILLION)) == pytest.approx(3.0)
    assert price_of("gpt-4o") == KNOWN_PRICES["gpt-4o"]  # the others stay


def test_env_override_applies_to_run_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, '{"local": [0, 0]}')
    total, _ = estimate_run_cost(AgentModels(writer="local"), {"writer": usage(100, 100)})
    assert total == 0.0


def test_load_prices_reads_a_given_environment() -> None:
    prices = load_prices({PRICES_ENV: '{"x": [1.25, 2]}'})
    assert prices["x"] == Price(input=1.25, output=2.0)
    assert load_prices({}) == dict(KNOWN_PRICES)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("{my-model: [1, 2]}", "not valid JSON", id="not-json"),
        pytest.param("[1, 2]", "must be a JSON object", id="not-an-object"),
        pytest.param('{"m": 1.5}', "must be [input, output]", id="not-a-pair"),
        pytest.param('{"m": [1]}', "must be [input, output]", id="one-price"),
        pytest.param('{"m": [1, "2"]}', "must be [input, output]", id="string-price"),
        pytest.param('{"m": [-1, 2]}', "must be [input, output]", id="negative"),
        pytest.param('{"m": [true, 2]}', "must be [input, output]", id="boolean"),
    ],
)
def test_invalid_env_override_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, raw: str, message: str
) -> None:
    monkeypatch.setenv(PRICES_ENV, raw)
    with pytest.raises(UsageError, match=re.escape(message)) as caught:
        estimate_cost("gpt-4o-mini", usage(1, 1))
    text = str(caught.value)
    assert PRICES_ENV in text
    assert "\n" not in text


def test_blank_env_override_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICES_ENV, "  ")
    assert price_of("gpt-4o") == KNOWN_PRICES["gpt-4o"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(None, "unknown", id="unknown"),
        pytest.param(0.0, "$0.0000", id="zero"),
        pytest.param(0.0123, "$0.0123", id="cents"),
        pytest.param(0.00001, "<$0.0001", id="tiny-not-shown-as-free"),
        pytest.param(0.00005, "$0.0001", id="rounds-up"),
        pytest.param(1234.5, "$1,234.5000", id="thousands"),
    ],
)
def test_format_cost(value: float | None, text: str) -> None:
    assert format_cost(value) == text
