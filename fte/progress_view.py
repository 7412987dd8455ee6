"""Showing a run's live progress: a rich live panel on a terminal, plain lines elsewhere."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from fte.contracts import Progress
from fte.text import counted

if TYPE_CHECKING:
    from fte.client import Snapshot

_STATE_STYLE = {
    "pending": "dim",
    "searching": "yellow",
    "done": "green",
    "failed": "red",
}
_END_STYLE = {"completed": "bold green", "failed": "bold red"}

CostFn = Callable[[Progress], str]


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def elapsed(progress: Progress, now: datetime | None = None) -> str:
    started = _utc(progress.started_at)
    moment = now or datetime.now(UTC)
    if progress.stage in ("completed", "failed", "rejected", "cancelled"):
        moment = _utc(progress.updated_at)
    seconds = max(0, int((moment - started).total_seconds()))
    return f"{seconds // 60}m{seconds % 60:02d}s"


# Characters that would act on the terminal instead of showing (C0/C1 controls, DEL) or
# reorder what follows (bidirectional overrides), and line breaks inside a one-line field.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with terminal-controlling characters shown as escapes (`\x1b`, `\u202e`)."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match[0])
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, text)


def summary_line(snap: Snapshot, cost: CostFn | None = None) -> str:
    p = snap.progress
    if p is None:
        return f"{snap.task_id}: {snap.runtime_status.lower()}"
    done = sum(q.state == "done" for q in p.sub_questions)
    parts = [f"[{p.stage}]"]
    if p.sub_questions:
        parts.append(f"sub-questions {done}/{len(p.sub_questions)}")
    if p.depth and p.round:  # round 0 is the first pass: no gap round under way yet
        parts.append(f"round {p.round}/{p.depth}")
    parts += [f"sources {p.sources_found}", f"tokens {p.usage.total_tokens}"]
    if cost is not None:
        parts.append(f"cost {cost(p)}")
    if p.spend is not None:
        parts.append(f"spent {p.spend.describe()}")
    parts.append(f"elapsed {elapsed(p)}")
    if p.reason:
        parts.append(f"reason: {printable(p.reason)}")
    return "  ".join(parts)


def panel(snap: Snapshot, cost: CostFn | None = None) -> Group:
    p = snap.progress
    if p is None:
        return Group(Text(f"{snap.task_id}: {snap.runtime_status.lower()}"))
    stage_style = _END_STYLE.get(p.stage, "bold cyan")
    header = Text.assemble(
        (f"{snap.task_id} ", "bold"),
        (p.stage, stage_style),
        f"  elapsed {elapsed(p)}",
    )
    query = Text(p.query, style="italic")
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("#")
    table.add_column("state")
    table.add_column("sources", justify="right")
    table.add_column("sub-question", overflow="fold")
    for q in p.sub_questions:
        table.add_row(q.id, Text(q.state, _STATE_STYLE.get(q.state, "")), str(q.sources), q.text)
    footer = Text(
        f"sources {p.sources_found}  claims {p.claims}  tokens {p.usage.total_tokens} "
        f"in {p.usage.calls} calls"
        + (f"  est. cost {cost(p)}" if cost is not None else "")
        + (f"  check-ins {p.checkins}" if p.checkins else "")
    )
    parts: list[Text | Table] = [header, query]
    if p.sub_questions:
        parts.append(table)
    for r in p.rounds:
        parts.append(
            Text(
                f"round {r.round}/{p.depth} {r.state}: "
                f"looked for {counted(len(r.looked_for), 'gap')}, "
                f"found {counted(len(r.sources_found), 'source')}, "
                f"added {counted(len(r.claims_added), 'claim')}"
                + (f" ({r.note})" if r.note else "")
            )
        )
    parts.append(footer)
    if p.spend is not None:
        parts.append(Text(f"budget: spent {p.spend.describe()}"))
    if p.reason:
        # A budget that ended the research is a note on a completed run, not an error.
        style = "yellow" if p.stage == "completed" else "red"
        parts.append(Text(f"reason: {p.reason}", style=style))
    return Group(*parts)


def show(snapshots: Iterable[Snapshot], *, cost: CostFn | None = None) -> Snapshot:
    """Render each snapshot as it arrives; return the last one."""
    console = Console(stderr=True)
    last: Snapshot | None = None
    if console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            for snap in snapshots:
                live.update(panel(snap, cost))
                last = snap
    else:
        printed = ""
        for snap in snapshots:
            line = summary_line(snap, cost)
            # Elapsed time changes every poll; print only when something else did.
            key = line.rsplit("  elapsed", 1)[0]
            if key != printed:
                print(line, file=sys.stderr, flush=True)
                printed = key
            last = snap
    assert last is not None, "follow() always yields at least one snapshot"
    return last
