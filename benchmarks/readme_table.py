"""The README's performance table, generated from `benchmarks/results.json` (`perf.py`).

Prints the table, or with `--write README.md` replaces the text between the
`<!-- perf-table:begin -->` and `<!-- perf-table:end -->` markers. A `before` file (the same
benchmark run on the code before issue 11) adds a column.

    python benchmarks/readme_table.py [--before benchmarks/results-before.json] [--write README.md]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- perf-table:begin -->", "<!-- perf-table:end -->"

Fmt = Callable[[Any], str]


def seconds(value: Any) -> str:
    return f"{value:.2f} s"


def ratio(value: Any) -> str:
    return f"{value:.2f}"


def kilobytes(value: Any) -> str:
    return f"{value / 1024:.0f} KB"


def size(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{count / 1e3:.0f} KB"


def shrunk(value: Any) -> str:
    before, after = value
    return f"{size(before)} → {size(after)}"


def per_second(value: Any) -> str:
    return f"{value:.0f}/s"


def runs_per_second(value: Any) -> str:
    return f"{value:.1f}/s"


# (key in results.json, what it measures, how to show it, the goal)
ROWS: list[tuple[str, str, Fmt, str]] = [
    ("fanout_8x1s_wall_s", "fan-out of 8 activities × 1 s (`when_all`)", seconds, "≤ 1.15 s"),
    ("fanout_32x1s_wall_s", "fan-out of 32 activities × 1 s", seconds, "≤ 1.5 s"),
    ("fanout_32x1s_async_wall_s", "the same with `async def` activities", seconds, "—"),
    ("run_wall_over_critical_path_4", "research run ÷ critical path, 4 sub-questions", ratio, "≤ 1.05"),  # noqa: E501
    ("run_wall_over_critical_path_8", "research run ÷ critical path, 8 sub-questions", ratio, "≤ 1.05"),  # noqa: E501
    ("run_wall_over_critical_path_16", "research run ÷ critical path, 16 sub-questions", ratio, "≤ 1.05"),  # noqa: E501
    ("max_llm_in_flight_8", "most LLM calls in flight, 8 sub-questions", str, "8"),
    ("cli_wall_over_critical_path", "whole `fte research` ÷ critical path (stack start included)", ratio, "≤ 1.4"),  # noqa: E501
    ("help_s", "`fte --help`", seconds, "≤ 0.25 s"),
    ("status_unknown_s", "`fte status <unknown>`, no stack running", seconds, "≤ 0.4 s"),
    ("cold_start_s", "stack start, cold (fresh data directory)", seconds, "≤ 1 s"),
    ("warm_start_s", "stack start, warm (same directory again)", seconds, "≤ cold"),
    ("activities_per_s_50_runs", "throughput, runs at once, offline model: activities", per_second, "≥ 200/s"),  # noqa: E501
    ("workflows_per_s_50_runs", "… workflow instances (runs and their children)", per_second, "—"),
    ("runs_per_s_50_runs", "… research runs (4 sub-questions each)", runs_per_second, "—"),
    ("dapr_shape_sqlite_activities_per_s", "Dapr's own benchmark shape (110 workflows × 5 parallel no-op activities at once), SQLite: activities", per_second, "—"),  # noqa: E501
    ("dapr_shape_postgresql_activities_per_s", "… the same on PostgreSQL, the store behind Dapr's figures", per_second, "—"),  # noqa: E501
    ("purge_state_store_bytes", "state store before → after `fte purge` of every run measured here (it compacts)", shrunk, "space returned"),  # noqa: E501
    ("background_workers_for_20_detach", "background workers started by 20 simultaneous `fte research --detach`", str, "1"),  # noqa: E501
    ("history_bytes_per_run", "stored workflow state per run (8 sub-questions)", kilobytes, "≤ 100 KB"),  # noqa: E501
]  # fmt: skip


def table(results: dict[str, Any], before: dict[str, Any] | None) -> str:
    head = "| measure | " + ("before | " if before else "") + "now | goal |"
    rule = "|---|" + ("---|" if before else "") + "---|---|"
    lines = [head, rule]
    for key, label, fmt, goal in ROWS:
        now = results.get(key)
        cells = [label]
        if before is not None:
            old = before.get(key)
            cells.append("n/a" if old is None else fmt(old))
        cells += ["n/a" if now is None else fmt(now), goal]
        lines.append("| " + " | ".join(cells) + " |")
    machine = results.get("machine", {})
    runs = results.get("throughput_runs", "?")
    published = results.get("dapr_published", {})
    loads = f"{machine.get('load_1m_at_start', 0):.1f}"
    if before is not None:
        loads = f"{before.get('machine', {}).get('load_1m_at_start', 0):.1f} before, {loads} now"
    lines.append("")
    lines.append(
        f"Measured by `make bench` (`benchmarks/perf.py`) on {machine.get('cpus', '?')} cores, "
        f"load average {loads} at the start (the machine was shared); mock LLM latency "
        f"{results.get('mock_llm_delay_s', '?')} s; throughput with "
        f"{runs} runs at once. Dapr's published figures (v1.17, Kubernetes, PostgreSQL): "
        f"{published.get('workflows_per_s', '?'):.0f} workflows/s and "
        f"{published.get('activities_per_s', '?'):.0f} activities/s."
    )
    cpu_by_load = [
        ("the throughput run", "throughput_cpu_cores_by_process"),
        ("Dapr's shape on SQLite", "dapr_shape_sqlite_cpu_cores_by_process"),
        ("Dapr's shape on PostgreSQL", "dapr_shape_postgresql_cpu_cores_by_process"),
    ]
    for load, key in cpu_by_load:
        cores = results.get(key, {})
        if cores:
            lines.append("")
            lines.append(
                f"CPU cores used during {load}: "
                + ", ".join(f"{role} {used:.2f}" for role, used in cores.items())
                + "."
            )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--before", type=Path, help="results of the code before issue 11")
    parser.add_argument("--write", type=Path, help="README to update between the markers")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    before = json.loads(args.before.read_text()) if args.before else None
    text = table(results, before)
    if args.write is None:
        print(text)
        return 0
    readme = args.write.read_text()
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"{args.write} has no {BEGIN} ... {END} markers")
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    args.write.write_text(readme[:start] + "\n" + text + "\n" + readme[end:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
