"""Estimated USD cost of the tokens a run used.

An estimate, never a bill: the table below is a snapshot of list prices and the provider
may charge differently (cached input, batch discounts, price changes). A model this table
does not know has an unknown cost (`None`), never a guessed one, so a report never shows a
made-up number. Prices for other models, or corrected prices, come from the `FTE_PRICES`
environment variable:

    FTE_PRICES='{"my-model": [0.5, 1.5]}'   # USD per 1M input tokens, per 1M output tokens
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import NamedTuple

from fte.contracts import OFFLINE_MODEL, AgentModels, TokenUsage
from fte.errors import UsageError

PRICES_ENV = "FTE_PRICES"
TOKENS_PER_PRICE_UNIT = 1_000_000


class Price(NamedTuple):
    """USD per one million tokens."""

    input: float
    output: float


# Estimates, dated 2026-11-25, copied from OpenAI's published list prices as last known to the
# author; they could NOT be checked against https://openai.com/api/pricing when written (no
# network access), so verify them there before relying on a figure, and correct them (or
# override them with FTE_PRICES) when the price page says otherwise.
KNOWN_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "gpt-4.1-nano": Price(input=0.10, output=0.40),
    "o3-mini": Price(input=1.10, output=4.40),
    "o4-mini": Price(input=1.10, output=4.40),
    # The built-in offline model runs in-process: it costs nothing, which is known, not guessed.
    OFFLINE_MODEL: Price(input=0.0, output=0.0),
}

# Providers pin snapshots as `<name>-YYYY-MM-DD`; a snapshot is billed as its base model.
_DATED_SNAPSHOT = re.compile(r"^(?P<base>.+)-\d{4}-\d{2}-\d{2}$")


def load_prices(environ: Mapping[str, str] | None = None) -> dict[str, Price]:
    """The built-in table with the `FTE_PRICES` overrides applied on top."""
    env = os.environ if environ is None else environ
    prices = dict(KNOWN_PRICES)
    raw = env.get(PRICES_ENV, "").strip()
    if raw:
        prices.update(_parse_overrides(raw))
    return prices


def _parse_overrides(raw: str) -> dict[str, Price]:
    example = '{"my-model": [0.5, 1.5]}'
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{PRICES_ENV} is not valid JSON ({error.msg} at position {error.pos}); "
            f"expected e.g. {example} (USD per 1M input and output tokens)"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"{PRICES_ENV} must be a JSON object such as {example}")
    prices: dict[str, Price] = {}
    for model, pair in data.items():
        if not (
            isinstance(pair, list) and len(pair) == 2 and all(_is_price(value) for value in pair)
        ):
            raise UsageError(
                f"{PRICES_ENV}: the price of {model!r} must be [input, output], two numbers >= 0 "
                f"in USD per 1M tokens, not {json.dumps(pair)}"
            )
        prices[model] = Price(input=float(pair[0]), output=float(pair[1]))
    return prices


def _is_price(value: object) -> bool:
    # JSON true/false arrive as bool, which is an int subclass; a price is never a boolean.
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def price_of(model: str, prices: Mapping[str, Price] | None = None) -> Price | None:
    """The price of `model`, matched exactly or as a dated snapshot of a known model."""
    table = load_prices() if prices is None else prices
    if model in table:
        return table[model]
    snapshot = _DATED_SNAPSHOT.match(model)
    if snapshot is not None:
        return table.get(snapshot["base"])
    return None


def estimate_cost(model: str, usage: TokenUsage) -> float | None:
    """Estimated USD cost of `usage` on `model`, or None if the model's price is unknown."""
    return _cost(price_of(model), usage)


def estimate_run_cost(
    models: AgentModels, usage_by_agent: dict[str, TokenUsage]
) -> tuple[float | None, dict[str, float | None]]:
    """The run's estimated total and the estimate per agent.

    The total is None when any agent that used tokens has an unknown price: a partial sum
    would read as the whole cost. An agent that used nothing does not make it unknown.
    """
    prices = load_prices()
    model_of = models.model_dump()
    per_agent: dict[str, float | None] = {}
    total: float | None = 0.0
    for agent, usage in usage_by_agent.items():
        model = model_of.get(agent)
        cost = _cost(price_of(model, prices), usage) if isinstance(model, str) else None
        per_agent[agent] = cost
        if cost is None:
            if usage.total_tokens > 0 or usage.calls > 0:
                total = None
        elif total is not None:
            total += cost
    return total, per_agent


def _cost(price: Price | None, usage: TokenUsage) -> float | None:
    if price is None:
        return None
    return (
        usage.prompt_tokens * price.input + usage.completion_tokens * price.output
    ) / TOKENS_PER_PRICE_UNIT


def format_cost(value: float | None) -> str:
    """`$0.0123`; `unknown` when the price is not known."""
    if value is None:
        return "unknown"
    if 0 < value < 0.00005:
        return "<$0.0001"  # would round to $0.0000, which reads as free
    return f"${value:,.4f}"
