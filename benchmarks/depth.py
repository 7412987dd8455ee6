"""Benchmark: what gap-filling rounds buy, and what they cost (issue 13).

Runs the e2e evaluation's research questions (`evals/e2e.toml`) through the real engine
at each depth, side by side in one run, with the built-in offline model served over
HTTP (deterministic: the same inputs give the same answers), and prints per depth:
key-fact recall (pooled over the labelled facts), the share of claims the fact check
supported, sub-question coverage, sources, claims and tokens per report.

    python benchmarks/depth.py [--depths 0,1,2] [--cases ID,...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from fte.agents import offline_model
from fte.contracts import OFFLINE_MODEL, AgentModels
from fte.evals import metrics
from fte.evals.data import corpus_dir, load_toml
from fte.evals.e2e import E2ESuite
from fte.evals.engine import EvalEngine
from fte.evals.transports import ModelServer
from fte.logs import configure_logging


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="0,1,2")
    parser.add_argument("--cases", default="", help="comma-separated case IDs (default: all)")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()
    configure_logging()
    depths = [int(d) for d in args.depths.split(",")]
    cases = load_toml("e2e.toml", E2ESuite).cases
    if args.cases:
        wanted = set(args.cases.split(","))
        cases = [c for c in cases if c.id in wanted]
    models = AgentModels(**dict.fromkeys(AgentModels.model_fields, OFFLINE_MODEL))
    rows: dict[int, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="fte-depth-") as work,
        EvalEngine(Path(work) / "engine") as engine,
    ):
        for depth in depths:
            found = facts = supported = claims = completed = 0
            tokens = sources = coverage = seconds = 0.0
            for case in cases:
                corpus = corpus_dir(case.corpus)
                started = time.monotonic()
                result = engine.run(
                    engine.config(case.query, corpus, models, depth=depth),
                    ModelServer(offline_model()),
                    task_id=f"depth{depth}-{case.id}",
                )
                seconds += time.monotonic() - started
                facts += len(case.facts)
                report = result.report
                if report is None:
                    print(
                        f"depth {depth} {case.id}: {result.status} {result.reason}", file=sys.stderr
                    )
                    continue
                completed += 1
                texts = metrics.grounded_text(report)
                found += sum(metrics.fact_found(f.match, texts) for f in case.facts)
                supported += sum(c["verdict"] == "supported" for c in report["claims"])
                claims += len(report["claims"])
                usage = report["usage_total"]
                tokens += usage["prompt_tokens"] + usage["completion_tokens"]
                sources += len(report["sources"])
                coverage += metrics.sub_question_coverage(report)
            n = max(completed, 1)
            rows[depth] = {
                "key_fact_recall": round(found / facts, 4),
                "supported_claim_share": round(supported / max(claims, 1), 4),
                "sub_question_coverage": round(coverage / n, 4),
                "sources_per_report": round(sources / n, 1),
                "claims_per_report": round(claims / n, 1),
                "tokens_per_report": round(tokens / n, 1),
                "completed": completed,
                "seconds_per_run": round(seconds / max(len(cases), 1), 2),
            }
    names = list(next(iter(rows.values())))
    print(f"{len(cases)} e2e questions, offline model, same questions at each depth")
    print(f"{'metric':<24}" + "".join(f"{'depth ' + str(d):>12}" for d in depths))
    for name in names:
        print(f"{name:<24}" + "".join(f"{rows[d][name]:>12}" for d in depths))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
