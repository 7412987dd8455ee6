"""Where a research run's time goes besides its model calls, segment by segment.

    python benchmarks/run_timeline.py [SUB_QUESTIONS ...]      (default: 4 8 16)

For each width, one run on the real embedded stack (after a warm-up run) against
perf.py's mock LLM, which answers every request after 0.5 s and notes when each request
arrived and when its answer left. The run's critical path is its six sequential model
calls; everything between them is the engine's and the pipeline's: the start, the fan-out
to the source finders, each lane's hand-off from its query proposal to its relevance
judgement, the fan-in to the analyst, the hand-offs between specialists, and the end.
Prints milliseconds per segment. A script that prints numbers, not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from perf import MockLLM, research_run, run_config

from fte import wiring
from fte.agents import analyst, fact_checker, planner, writer
from fte.agents.source_finder import QUERIES, RELEVANCE
from fte.dapr_build import find_binaries
from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack
from fte.llm import LLMConfig
from fte.logs import configure_logging


def segments(mock: MockLLM, started: float, ended: float) -> list[tuple[str, float]]:
    """(segment, seconds) from the mock's log of one run that ran from `started` to `ended`."""

    def calls(agent: str) -> tuple[list[float], list[float]]:
        found = [c for c in mock.calls if c.agent == agent]
        if not found:
            raise RuntimeError(f"the run made no {agent} call")
        return [c.started for c in found], [c.ended for c in found]

    (plan_in,), (plan_out,) = calls(planner.AGENT.name)
    query_in, query_out = calls(QUERIES.name)
    judge_in, judge_out = calls(RELEVANCE.name)
    (analyst_in,), (analyst_out,) = calls(analyst.AGENT.name)
    (check_in,), (check_out,) = calls(fact_checker.AGENT.name)
    (write_in,), (write_out,) = calls(writer.AGENT.name)
    return [
        ("start → planner request", plan_in - started),
        ("planner answer → first lane's query request", min(query_in) - plan_out),
        ("planner answer → last lane's query request (fan-out)", max(query_in) - plan_out),
        ("last query answer → last relevance request", max(judge_in) - max(query_out)),
        ("last relevance answer → analyst request (fan-in)", analyst_in - max(judge_out)),
        ("analyst answer → fact checker request", check_in - analyst_out),
        ("fact checker answer → writer request", write_in - check_out),
        ("writer answer → run seen completed", ended - write_out),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("widths", type=int, nargs="*", default=[4, 8, 16])
    parser.add_argument("--delay", type=float, default=0.5, help="mock LLM latency, seconds")
    args = parser.parse_args()
    configure_logging()
    mock = MockLLM(delay_s=args.delay)
    with (
        tempfile.TemporaryDirectory(prefix="fte-timeline-", ignore_cleanup_errors=True) as data,
        mock.serve() as mock_url,
        EmbeddedStack(data_dir=Path(data), binaries=find_binaries()) as endpoint,
        wiring.research_worker(endpoint, llm_config=LLMConfig(base_url=mock_url)),
    ):
        client = workflow_client(endpoint)
        try:
            research_run(client, run_config(3, base_url=mock_url), "warmup")
            for width in args.widths:
                mock.reset()
                started = time.perf_counter()
                wall = research_run(client, run_config(width, base_url=mock_url), f"run-{width}")
                ended = started + wall
                critical = mock.critical_path_s()
                print(
                    f"\n{width} sub-questions: run {wall:.3f} s, critical path {critical:.3f} s, "
                    f"ratio {wall / critical:.3f}, overhead {(wall - critical) * 1000:.0f} ms"
                )
                for name, seconds in segments(mock, started, ended):
                    print(f"  {seconds * 1000:7.1f} ms  {name}")
        finally:
            client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
