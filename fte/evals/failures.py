"""Suite 4, failure behaviour: scripted HTTP faults through the real pipeline on the real engine.

Each case puts a fault sequence (`evals/failures.toml`) in front of one agent's requests,
with the offline model answering everything else over HTTP, and checks the outcome the
retry design promises: recovered after n requests, failed fast, or failed and
compensated. The outcome is read from the run's end state, the fault injector's request
count per agent, and the run's artifacts left in the state store.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fte.agents import offline_model
from fte.contracts import Contract
from fte.evals.context import EvalContext
from fte.evals.data import corpus_dir, load_toml
from fte.evals.engine import RunResult
from fte.evals.scorecard import COUNT_TOLERANCE, Case, Metric, SuiteResult
from fte.evals.transports import Fault, FaultInjector, ModelServer

NAME = "failures"
DESCRIPTION = (
    "Scripted model-server faults (429 with Retry-After, 5xx bursts, timeouts, invalid JSON, "
    "schema-invalid output, 401, exhausted quota, a server that stays down) through the real "
    "pipeline: each run must end as designed, after exactly the expected requests."
)
METRIC = "failure_cases_as_expected"


class Expectation(Contract):
    status: Literal["completed", "failed"]
    requests: dict[str, int] = Field(description="Exact request count per agent.")
    compensated: bool = Field(
        default=False, description="A failed run leaves none of its artifacts behind."
    )


class FailureCase(Contract):
    id: str
    why: str
    agent: str
    faults: list[Fault] = Field(min_length=1)
    repeat_last: bool = False
    expect: Expectation


class FailureSuite(Contract):
    query: str
    corpus: str
    cases: list[FailureCase] = Field(min_length=1)


def mismatches(expect: Expectation, result: RunResult, requests: dict[str, int]) -> list[str]:
    """How the run differed from what was expected; empty when it behaved as designed."""
    found = []
    if result.status != expect.status:
        found.append(f"ended {result.status} ({result.reason}), expected {expect.status}")
    for agent, count in expect.requests.items():
        if requests.get(agent, 0) != count:
            found.append(f"{agent} got {requests.get(agent, 0)} requests, expected {count}")
    if expect.compensated and result.artifacts_left:
        found.append(f"artifacts left after compensation: {result.artifacts_left}")
    if expect.status == "completed" and result.report is None:
        found.append("completed without a report")
    return found


def run(ctx: EvalContext) -> SuiteResult:
    suite_data = load_toml("failures.toml", FailureSuite)
    corpus = corpus_dir(suite_data.corpus)
    engine = ctx.engine()
    suite = SuiteResult(name=NAME, description=DESCRIPTION)
    passed = 0
    for number, case in enumerate(suite_data.cases, 1):
        injector = FaultInjector(
            ModelServer(offline_model()),
            {case.agent: case.faults},
            repeat_last=case.repeat_last,
        )
        with ctx.timed(NAME, f"{case.id}_s"):
            # One pass: the scripts count the first pass's requests exactly.
            result = engine.run(
                engine.config(suite_data.query, corpus, depth=0),
                injector,
                task_id=f"fail-{case.id}",
            )
        problems = mismatches(case.expect, result, dict(injector.requests))
        passed += not problems
        suite.cases.append(
            Case(
                id=case.id,
                values={METRIC: 0.0 if problems else 1.0},
                note="; ".join(problems),
            )
        )
        counts = ", ".join(f"{a} {n}" for a, n in sorted(injector.requests.items()))
        ctx.progress(
            NAME,
            number,
            len(suite_data.cases),
            case.id,
            f"{result.status} ({counts})"
            + (f" — UNEXPECTED: {'; '.join(problems)}" if problems else " as expected"),
        )
    suite.metrics.append(
        Metric(
            name=METRIC,
            value=passed / len(suite_data.cases),
            tolerance=COUNT_TOLERANCE,
            description=(
                f"share of the {len(suite_data.cases)} fault scripts whose run ended as designed "
                "(status, exact request counts, compensation)"
            ),
        )
    )
    return suite
