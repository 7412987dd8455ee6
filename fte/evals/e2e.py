"""Suite 3, end to end: research questions through the real pipeline, model answers replayed.

Each question's model exchanges were recorded once into a cassette
(`evals/e2e/cassettes/<id>.json.gz`) by `fte eval e2e --record`: against the configured
OpenAI-compatible server, or, with none configured, the offline model served over HTTP.
Replay puts the cassette behind the worker's model client (`fte.evals.cassettes.Player`),
so the run goes through the real engine, the real client, the agents' rules and the
citation check, and any request the cassette does not hold fails the suite loudly.

Per report: key-fact recall against the facts labelled per question (`evals/e2e.toml`),
citation validity (citations that name a retrieved source whose passage exists: must be
1.0), the share of claims the fact check supported, sub-question coverage, tokens and
estimated cost; wall time per stage goes to the scorecard's timings.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import Field

from fte.agents import offline_model
from fte.contracts import OFFLINE_MODEL, AgentModels, Contract, TokenUsage
from fte.errors import FteError, UsageError
from fte.evals import metrics
from fte.evals.cassettes import Cassette, Player, Recorder
from fte.evals.context import EvalContext
from fte.evals.data import corpus_dir, data_dir, load_toml
from fte.evals.engine import EVAL_BASE_URL, EvalEngine, RunResult
from fte.evals.scorecard import COUNT_TOLERANCE, Case, Metric, SuiteResult
from fte.evals.transports import ModelServer
from fte.pricing import estimate_run_cost
from fte.research import choose_model
from fte.sources import LocalCorpus

NAME = "e2e"
DESCRIPTION = (
    "Research questions run end to end on the real engine with the model's answers replayed "
    "from cassettes: key facts found, citations valid, claims supported, sub-questions "
    "answered, tokens and cost."
)
CASSETTES = "e2e/cassettes"
OFFLINE_RECORDING = f"the built-in offline model ({OFFLINE_MODEL}) served over HTTP"


class KeyFact(Contract):
    fact: str = Field(description="The fact, for people.")
    match: list[list[str]] = Field(
        min_length=1, description="Groups of alternatives; one of each must be in a sentence."
    )


class E2ECase(Contract):
    id: str
    corpus: Literal["examples", "dapr-docs"]
    query: str
    facts: list[KeyFact] = Field(min_length=1)


class E2ESuite(Contract):
    cases: list[E2ECase] = Field(min_length=1)


class CassetteMismatch(FteError):
    """A replay asked for something its cassette does not hold (or left recordings unused)."""


def cassette_path(case: E2ECase) -> Path:
    return data_dir() / CASSETTES / f"{case.id}.json.gz"


# -- replay ------------------------------------------------------------------------------


def replay(ctx: EvalContext, case: E2ECase) -> RunResult:
    """Run `case` with its cassette as the model server; raises on any mismatch."""
    path = cassette_path(case)
    if not path.exists():
        raise UsageError(
            f"e2e case {case.id!r} has no cassette at {path}; record the cassettes with "
            "`python -m fte eval e2e --record`"
        )
    cassette = Cassette.load(path)
    corpus = corpus_dir(case.corpus)
    engine = ctx.engine()
    player = Player(cassette, base_url=EVAL_BASE_URL, corpus_root=corpus)
    models = AgentModels.model_validate(cassette.models)
    result = engine.run(engine.config(case.query, corpus, models), player, task_id=f"e2e-{case.id}")
    problems = player.misses + [
        f"recorded but never asked for: {i.request.agent} {i.request.path}" for i in player.unused()
    ]
    if problems:
        raise CassetteMismatch(
            f"e2e case {case.id!r} does not replay from {path} ({len(problems)} problem(s); "
            f"first: {problems[0]}). The prompts, agents or pipeline changed since it was "
            "recorded: re-record with `python -m fte eval e2e --record`"
        )
    return result


def reports(ctx: EvalContext) -> dict[str, tuple[E2ECase, RunResult]]:
    """Every case's replayed run, replayed once per `fte eval` (the judge reuses them)."""
    cached: dict[str, tuple[E2ECase, RunResult]] | None = ctx.shared.get(NAME)
    if cached is None:
        cases = load_toml("e2e.toml", E2ESuite).cases
        cached = {}
        for number, case in enumerate(cases, 1):
            with ctx.timed(NAME, f"{case.id}_s"):
                cached[case.id] = (case, replay(ctx, case))
            result = cached[case.id][1]
            ctx.progress(NAME, number, len(cases), case.id, f"replayed: {result.status}")
        ctx.shared[NAME] = cached
    return cached


# -- recording ---------------------------------------------------------------------------


def record(ctx: EvalContext) -> None:
    """Record every case's cassette from the configured model server (or the offline model)."""
    cases = load_toml("e2e.toml", E2ESuite).cases
    choice = choose_model(ctx.settings) if ctx.settings is not None else None
    if choice is None or choice.offline:
        engine, models = ctx.engine(), _offline_models()
        base_url, described = EVAL_BASE_URL, OFFLINE_RECORDING
        secrets: list[str] = []

        def server() -> httpx.BaseTransport:
            return ModelServer(offline_model())
    else:
        engine = ctx.enter(
            EvalEngine(ctx.work_dir / "record", llm_config=choice.config, endpoint=choice.endpoint)
        )
        models = choice.models
        base_url = choice.config.base_url or "https://api.openai.com/v1"
        described = choice.endpoint.describe()
        secrets = ctx.settings.secret_values() if ctx.settings else []

        def server() -> httpx.BaseTransport:
            return httpx.HTTPTransport()

    for case in cases:
        path = cassette_path(case)
        if path.exists() and described == OFFLINE_RECORDING:
            earlier = Cassette.load(path).recorded_with
            if earlier != OFFLINE_RECORDING:
                raise UsageError(
                    f"{path} was recorded with {earlier}; recording with the offline model "
                    "would replace it. Configure that model server, or delete the file first"
                )
    for number, case in enumerate(cases, 1):
        corpus = corpus_dir(case.corpus)
        recorder = Recorder(server(), base_url=base_url, corpus_root=corpus, secrets=secrets)
        result = engine.run(
            engine.config(case.query, corpus, models), recorder, task_id=f"record-{case.id}"
        )
        if result.status != "completed":
            raise FteError(
                f"recording e2e case {case.id!r}: the run {result.status}: {result.reason}"
            )
        Cassette(
            case=case.id,
            recorded_with=described,
            models=models.model_dump(),
            interactions=recorder.interactions,
        ).save(cassette_path(case))
        ctx.progress(
            NAME, number, len(cases), case.id, f"recorded {len(recorder.interactions)} exchanges"
        )


def _offline_models() -> AgentModels:
    return AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))


# -- metrics -----------------------------------------------------------------------------

FACTS = "key_fact_recall"
VALID = "citation_validity"
SUPPORTED = "supported_claim_share"
COVERAGE = "sub_question_coverage"
COMPLETED = "e2e_runs_completed"
TOKENS = "tokens_per_report"
COST = "estimated_cost_usd_per_report"


def _corpus_passages(name: str) -> set[str]:
    return {p.passage_id for p in LocalCorpus.load(corpus_dir(name)).passages}


def run(ctx: EvalContext) -> SuiteResult:
    if ctx.record:
        record(ctx)
    suite = SuiteResult(name=NAME, description=DESCRIPTION)
    runs = reports(ctx)
    passages = {name: _corpus_passages(name) for name in {case.corpus for case, _ in runs.values()}}
    pooled: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])  # metric -> [part, whole]

    def add(metric: str, part: float, whole: float) -> None:
        pooled[metric][0] += part
        pooled[metric][1] += whole

    by_corpus: dict[str, list[dict[str, float]]] = defaultdict(list)
    stage_seconds: dict[str, float] = defaultdict(float)
    tokens: list[float] = []
    costs: list[float | None] = []
    started = time.monotonic()
    for case, result in runs.values():
        report = result.report
        values: dict[str, float] = {COMPLETED: 1.0 if report is not None else 0.0}
        notes = [] if report is not None else [f"run {result.status}: {result.reason}"]
        found = 0
        if report is not None:
            texts = metrics.grounded_text(report)
            missing = [f.fact for f in case.facts if not metrics.fact_found(f.match, texts)]
            found = len(case.facts) - len(missing)
            cited = metrics.citations(report)
            claims = report["claims"]
            values |= {
                VALID: metrics.citation_validity(report, passages[case.corpus]),
                SUPPORTED: metrics.supported_claim_share(report),
                COVERAGE: metrics.sub_question_coverage(report),
            }
            valid = round(values[VALID] * len(cited))
            pooled[VALID] = [pooled[VALID][0] + valid, pooled[VALID][1] + len(cited)]
            supported = sum(c["verdict"] == "supported" for c in claims)
            pooled[SUPPORTED] = [
                pooled[SUPPORTED][0] + supported,
                pooled[SUPPORTED][1] + len(claims),
            ]
            usage = report["usage_total"]
            tokens.append(float(usage["prompt_tokens"] + usage["completion_tokens"]))
            cost, _ = estimate_run_cost(
                AgentModels.model_validate(report["models"]),
                {a: _usage(u) for a, u in report["usage_by_agent"].items()},
            )
            costs.append(cost)
            for stage, seconds in report["stage_seconds"].items():
                stage_seconds[f"{stage}_s"] += seconds
            if missing:
                notes.append("key facts not found: " + "; ".join(missing))
        values[FACTS] = found / len(case.facts)
        add(FACTS, found, len(case.facts))
        # Also under the per-corpus names, so a regression there names its cases.
        key = case.corpus.replace("-", "_")
        values |= {f"{m}_{key}": values.get(m, 0.0) for m in (FACTS, COVERAGE)}
        by_corpus[case.corpus].append(values)
        suite.cases.append(Case(id=case.id, values=values, note="; ".join(notes)))
    ctx.timing(NAME, "metrics_s", time.monotonic() - started)
    for stage, seconds in stage_seconds.items():
        ctx.timing(NAME, f"pipeline_{stage}", seconds)

    def pooled_share(metric: str) -> float:
        part, whole = pooled[metric]
        return round(metrics.share(part, whole), 4)

    n = len(runs)
    suite.metrics += [
        Metric(
            name=FACTS,
            value=pooled_share(FACTS),
            description=f"share of the {int(pooled[FACTS][1])} labelled key facts stated by a "
            "fact-checked paragraph of the report",
        ),
        Metric(
            name=VALID,
            value=pooled_share(VALID),
            tolerance=COUNT_TOLERANCE,
            description=f"share of the {int(pooled[VALID][1])} citations that name a retrieved "
            "source whose passage is in the corpus (must be 1.0)",
        ),
        Metric(
            name=SUPPORTED,
            value=pooled_share(SUPPORTED),
            description="share of the analyst's claims the fact check supported",
        ),
        Metric(
            name=COVERAGE,
            value=round(metrics.mean(v.get(COVERAGE, 0.0) for v in _all(by_corpus)), 4),
            description="mean share of planned sub-questions answered by a stated, supported claim",
        ),
        Metric(
            name=COMPLETED,
            value=round(sum(v[COMPLETED] for v in _all(by_corpus)) / n, 4),
            tolerance=COUNT_TOLERANCE,
            description=f"share of the {n} questions whose replayed run completed with a report",
        ),
    ]
    for corpus, values_list in sorted(by_corpus.items()):
        key = corpus.replace("-", "_")
        for metric, what in ((FACTS, "key facts found"), (COVERAGE, "sub-questions answered")):
            suite.metrics.append(
                Metric(
                    name=f"{metric}_{key}",
                    value=round(metrics.mean(v.get(metric, 0.0) for v in values_list), 4),
                    description=f"{corpus} questions only: mean share of {what}",
                )
            )
    known = [c for c in costs if c is not None]
    suite.metrics += [
        Metric(
            name=TOKENS,
            value=round(metrics.mean(tokens), 1),
            unit="tokens",
            better="lower",
            gated=False,
            description="mean tokens (prompt + completion) per report",
        ),
        Metric(
            name=COST,
            value=round(metrics.mean(known), 6) if len(known) == len(costs) else None,
            unit="usd",
            better="lower",
            gated=False,
            description="mean estimated cost per report at list prices (fte/pricing.py); "
            "n/a when a model's price is unknown",
        ),
    ]
    return suite


def _all(by_corpus: dict[str, list[dict[str, float]]]) -> list[dict[str, float]]:
    return [v for values in by_corpus.values() for v in values]


def _usage(raw: dict[str, Any]) -> TokenUsage:
    return TokenUsage.model_validate(raw)
