"""A run's spend against its budget, and whether the next step still fits.

Pure and deterministic (workflow code): spend is counted from the usage every agent
reported, in the prices the run was started with (`Budget.prices`), never from the
environment. The next step is estimated from what each agent has cost per call so far;
an agent that has not run yet is estimated at the dearest per-call cost seen, so the
first analyst call is not guessed cheaper than the planner's.

Before each fan-out and each round the coordinator asks `fits()` for the step plus the
steps the report cannot do without (analysis and fact check of what a round finds, the
writer), so stopping early normally leaves enough to write the report; and every step the
report needs is checked again just before it runs, with what is known by then. One that no
longer fits runs on the built-in offline model, which costs nothing (`rounds.py`). So the
budget is passed only by the one step that ran after its check and cost more than its
estimate, by that difference: never when calls cost what earlier calls of the same agent
cost (tests/orchestration/test_rounds.py). First calls are the estimates most likely to be
low: an agent that has not run is estimated from the others.
"""

from __future__ import annotations

from collections.abc import Mapping

from fte.contracts import RunConfig, Spend, TokenUsage
from fte.pricing import TOKENS_PER_PRICE_UNIT, Price, price_of

# Model calls one source-finder child makes: search queries, then relevance.
SOURCE_FINDER_CALLS = 2
# Before anything has run (nothing to learn from), a call is assumed to cost this much.
PRIOR_CALL = TokenUsage(prompt_tokens=2_000, completion_tokens=500, calls=1)


def _price(cfg: RunConfig, agent: str) -> Price | None:
    model = cfg.models.model_dump().get(agent)
    if not isinstance(model, str):
        return None
    table = {name: Price(p.input, p.output) for name, p in cfg.budget.prices.items()}
    return price_of(model, table)


def _usd(cfg: RunConfig, agent: str, prompt: float, completion: float) -> float | None:
    price = _price(cfg, agent)
    if price is None:
        return None
    return (prompt * price.input + completion * price.output) / TOKENS_PER_PRICE_UNIT


def spent(cfg: RunConfig, usage_by_agent: Mapping[str, TokenUsage]) -> Spend:
    """Tokens and USD so far (USD None when an agent that ran has no known price)."""
    tokens = 0
    usd: float | None = 0.0
    for agent, usage in usage_by_agent.items():
        tokens += usage.total_tokens
        cost = _usd(cfg, agent, usage.prompt_tokens, usage.completion_tokens)
        usd = None if cost is None or usd is None else usd + cost
    return Spend(tokens=tokens, usd=usd, budget_usd=cfg.budget.usd, max_tokens=cfg.budget.tokens)


def per_call(usage_by_agent: Mapping[str, TokenUsage], agent: str) -> tuple[float, float]:
    """(prompt, completion) tokens one call of `agent` is expected to cost."""
    usage = usage_by_agent.get(agent)
    if usage is not None and usage.calls:
        return usage.prompt_tokens / usage.calls, usage.completion_tokens / usage.calls
    seen = [
        (u.prompt_tokens / u.calls, u.completion_tokens / u.calls)
        for u in usage_by_agent.values()
        if u.calls
    ]
    if not seen:
        return float(PRIOR_CALL.prompt_tokens), float(PRIOR_CALL.completion_tokens)
    return max(seen, key=lambda pair: pair[0] + pair[1])


def estimate(
    cfg: RunConfig, usage_by_agent: Mapping[str, TokenUsage], calls: Mapping[str, int]
) -> tuple[float, float | None]:
    """Tokens and USD that `calls` (agent -> number of model calls) are expected to cost."""
    tokens = 0.0
    usd: float | None = 0.0
    for agent, n in calls.items():
        prompt, completion = per_call(usage_by_agent, agent)
        tokens += n * (prompt + completion)
        cost = _usd(cfg, agent, n * prompt, n * completion)
        usd = None if cost is None or usd is None else usd + cost
    return tokens, usd


def fits(
    cfg: RunConfig, usage_by_agent: Mapping[str, TokenUsage], calls: Mapping[str, int]
) -> bool:
    """Whether spend so far plus `calls` stays within every limit the run has."""
    budget = cfg.budget
    if not budget.limited:
        return True
    now = spent(cfg, usage_by_agent)
    tokens, usd = estimate(cfg, usage_by_agent, calls)
    if budget.tokens is not None and now.tokens + tokens > budget.tokens:
        return False
    # An unknown price cannot be checked against a USD limit: the CLI refuses such a
    # run before it starts, so here it would only be a model changed mid-flight.
    return budget.usd is None or (
        now.usd is not None and usd is not None and now.usd + usd <= budget.usd
    )


def largest_fan_out(
    cfg: RunConfig,
    usage_by_agent: Mapping[str, TokenUsage],
    wanted: int,
    *,
    per_child: Mapping[str, int],
    then: Mapping[str, int],
) -> int:
    """How many of `wanted` children (each `per_child` calls) fit, with `then` still to pay."""
    for n in range(wanted, 0, -1):
        calls = {agent: k * n for agent, k in per_child.items()}
        for agent, k in then.items():
            calls[agent] = calls.get(agent, 0) + k
        if fits(cfg, usage_by_agent, calls):
            return n
    return 0
