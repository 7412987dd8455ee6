"""Suite 5, the judge: an LLM scores each e2e report on a rubric, recorded so it replays.

The rubric (`evals/judge.md`) asks for comprehensiveness, depth, faithfulness to the
quoted evidence and readability, each 1-10 with reasons. Judging needs a live model:
`fte eval judge --record` (or `fte eval --record`) with an OpenAI-compatible server
configured sends each replayed e2e report to the writer's model and records the exchange
in `evals/judge/cassettes/<id>.json.gz`. Every later run replays those verdicts, so the
scores are part of the offline scorecard. With no recordings the suite says so and is
skipped: the offline model cannot judge, and a made-up score would be worse than none.

The judge sees a rendering of the report without anything that changes between runs
(no retrieval times, no paths), so the same report makes the same request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from fte.errors import FteError, UsageError
from fte.evals import e2e, metrics
from fte.evals.cassettes import Cassette, Player, Recorder
from fte.evals.context import EvalContext
from fte.evals.data import corpus_dir, data_dir
from fte.evals.engine import EVAL_BASE_URL, EVAL_LLM_CONFIG
from fte.evals.scorecard import Case, Metric, SuiteResult
from fte.llm import LLMClient
from fte.research import choose_model

NAME = "judge"
DESCRIPTION = (
    "An LLM judge's rubric scores (1-10) for each e2e report: comprehensiveness, depth, "
    "faithfulness to the quoted evidence, readability. Recorded once with a live model, "
    "replayed offline."
)
CASSETTES = "judge/cassettes"
CRITERIA = ("comprehensiveness", "depth", "faithfulness", "readability")
JUDGE_TOLERANCE = 0.25  # a mean score on 1-10


class Score(BaseModel):
    score: int = Field(ge=1, le=10, description="1 (very poor) to 10 (excellent).")
    reason: str = Field(description="One or two sentences on why.")


class JudgeVerdict(BaseModel):
    """The judge's scores for one report."""

    comprehensiveness: Score
    depth: Score
    faithfulness: Score
    readability: Score


def rubric() -> tuple[str, str]:
    """`(system, user template)` from evals/judge.md."""
    text = (data_dir() / "judge.md").read_text(encoding="utf-8")
    parts = re.split(r"^## (System|User)[ \t]*$", text, flags=re.MULTILINE)
    if parts[1::2] != ["System", "User"]:
        raise UsageError("evals/judge.md needs a '## System' and then a '## User' section")
    return parts[2].strip(), parts[4].strip()


def judge_prompt(question: str, report: Mapping[str, Any]) -> tuple[str, str]:
    """The rubric filled with the report's stable parts and its claims' evidence."""
    numbers = {s["id"]: s["number"] for s in report["sources"] if s["number"] is not None}
    lines = [f"# {report['title']}", "", report["summary"], ""]
    for section in report["sections"]:
        lines += [f"## {section['heading']}", ""]
        for paragraph in section["paragraphs"]:
            marks = "".join(
                f"[{n}]"
                for n in dict.fromkeys(numbers[s] for s in paragraph["source_ids"] if s in numbers)
            )
            lines += [f"{paragraph['text']} {marks}".strip(), ""]
    lines += ["## Sources", ""]
    lines += [f"{s['number']}. {s['title']}" for s in report["sources"] if s["number"] is not None]
    stated = {cid for s in report["sections"] for p in s["paragraphs"] for cid in p["claim_ids"]}
    evidence = [
        f'- [{c["claim"]["id"]}] {c["claim"]["text"]}\n  evidence: "{c["evidence"]}"'
        for c in report["claims"]
        if c["claim"]["id"] in stated and c["evidence"]
    ]
    system, template = rubric()
    user = (
        template.replace("{question}", question)
        .replace("{report}", "\n".join(lines).strip())
        .replace("{evidence}", "\n".join(evidence) or "(none)")
    )
    return system, user


def cassette_path(case_id: str) -> Path:
    return data_dir() / CASSETTES / f"{case_id}.json.gz"


def _ask(client: LLMClient, model: str, question: str, report: Mapping[str, Any]) -> JudgeVerdict:
    system, user = judge_prompt(question, report)
    return client.structured(
        agent=NAME, model=model, system=system, user=user, output_model=JudgeVerdict
    ).output


def record(ctx: EvalContext) -> str | None:
    """Record a verdict per e2e report from the configured model; why not, if it cannot."""
    choice = choose_model(ctx.settings) if ctx.settings is not None else None
    if choice is None or choice.offline:
        return "the judge needs a live model: set OPENAI_API_KEY or OPENAI_BASE_URL to record"
    secrets = ctx.settings.secret_values() if ctx.settings else []
    base_url = choice.config.base_url or "https://api.openai.com/v1"
    model = choice.models.writer
    runs = e2e.reports(ctx)
    for number, (case, result) in enumerate(runs.values(), 1):
        if result.report is None:
            continue
        recorder = Recorder(
            httpx.HTTPTransport(),
            base_url=base_url,
            corpus_root=corpus_dir(case.corpus),
            secrets=secrets,
        )
        with LLMClient(choice.config, http_client=httpx.Client(transport=recorder)) as client:
            verdict = _ask(client, model, case.query, result.report)
        Cassette(
            case=case.id,
            recorded_with=choice.endpoint.describe(),
            models={NAME: model},
            interactions=recorder.interactions,
        ).save(cassette_path(case.id))
        ctx.progress(NAME, number, len(runs), case.id, _summary(verdict))
    return None


def replay(case: e2e.E2ECase, report: Mapping[str, Any], cassette: Cassette) -> JudgeVerdict:
    """The recorded verdict, asked for again through the model client; a miss fails loudly."""
    player = Player(cassette, base_url=EVAL_BASE_URL, corpus_root=corpus_dir(case.corpus))
    try:
        with LLMClient(EVAL_LLM_CONFIG, http_client=httpx.Client(transport=player)) as client:
            return _ask(client, cassette.models[NAME], case.query, report)
    except FteError:
        if not player.misses:
            raise
    raise e2e.CassetteMismatch(
        f"judge case {case.id!r} does not replay from {cassette_path(case.id)} "
        f"({player.misses[0]}); the report changed since the verdict was recorded: "
        "re-record with `python -m fte eval judge --record` and a model configured"
    )


def _summary(verdict: JudgeVerdict) -> str:
    return ", ".join(f"{c} {getattr(verdict, c).score}" for c in CRITERIA)


def run(ctx: EvalContext) -> SuiteResult:
    suite = SuiteResult(name=NAME, description=DESCRIPTION)
    if ctx.record:
        why_not = record(ctx)
        if why_not:
            ctx.say(f"judge: not recorded: {why_not}")
    folder = data_dir() / CASSETTES
    recorded = {path.name.removesuffix(".json.gz") for path in folder.glob("*.json.gz")}
    if not recorded:
        suite.skipped = (
            "no recorded verdicts: the judge needs a live model once "
            "(`python -m fte eval judge --record` with OPENAI_API_KEY or OPENAI_BASE_URL set)"
        )
        return suite
    scores: dict[str, list[float]] = {c: [] for c in CRITERIA}
    runs = e2e.reports(ctx)
    judged = [(case, result) for case, result in runs.values() if case.id in recorded]
    for number, (case, result) in enumerate(judged, 1):
        if result.report is None:
            continue
        verdict = replay(case, result.report, Cassette.load(cassette_path(case.id)))
        values = {f"judge_{c}": float(getattr(verdict, c).score) for c in CRITERIA}
        for c in CRITERIA:
            scores[c].append(values[f"judge_{c}"])
        reasons = "; ".join(f"{c}: {getattr(verdict, c).reason}" for c in CRITERIA)
        suite.cases.append(Case(id=case.id, values=values, note=reasons))
        ctx.progress(NAME, number, len(judged), case.id, _summary(verdict))
    recorded_with = Cassette.load(cassette_path(judged[0][0].id)).recorded_with if judged else ""
    for c in CRITERIA:
        suite.metrics.append(
            Metric(
                name=f"judge_{c}",
                value=round(metrics.mean(scores[c]), 2) if scores[c] else None,
                unit="score",
                tolerance=JUDGE_TOLERANCE,
                description=f"mean {c} score (1-10) of {len(scores[c])} reports, judged by "
                f"{recorded_with}",
            )
        )
    return suite
