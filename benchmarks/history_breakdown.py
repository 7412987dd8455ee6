"""Where a run's stored workflow history goes: bytes per workflow and per kind of event.

Reads the history rows of a run and its children from an embedded data directory's SQLite
state store (`state.db`), decodes each as the engine's `HistoryEvent` protobuf, and sums
the bytes by instance and by event (`taskScheduled:fte.agent.analyst`,
`childWorkflowInstanceCompleted`, ...). The map for making histories lean: which inputs and
results carry passages.

    python benchmarks/history_breakdown.py DATA_DIR TASK_ID [--top 15]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import sqlite3
from collections import Counter
from pathlib import Path

from dapr.ext.workflow._durabletask.internal import history_events_pb2 as pb

from fte.layout import STATE_DB


def breakdown(db: Path, task_id: str) -> tuple[Counter[str], Counter[str]]:
    by_instance: Counter[str] = Counter()
    by_event: Counter[str] = Counter()
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT key, value, is_binary FROM state WHERE key LIKE ? AND key LIKE '%||history-%'",
            (f"%workflow||{task_id}%",),
        ).fetchall()
    for key, value, is_binary in rows:
        raw = base64.b64decode(value) if is_binary else value.encode()
        instance = key.split("||")[2]
        by_instance[instance] += len(raw)
        event = pb.HistoryEvent.FromString(raw)
        kind = event.WhichOneof("eventType") or "?"
        detail = getattr(event, kind)
        name = getattr(detail, "name", "")
        by_event[f"{kind}:{name}" if name else kind] += len(raw)
    return by_instance, by_event


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("task_id")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    by_instance, by_event = breakdown(args.data_dir / STATE_DB, args.task_id)
    total = sum(by_instance.values())
    print(f"history of {args.task_id} and its children: {total / 1024:.0f} KB")
    print("\nby workflow instance")
    for instance, size in by_instance.most_common(args.top):
        print(f"  {size / 1024:7.1f} KB  {instance}")
    print("\nby event (kind:name)")
    for event, size in by_event.most_common(args.top):
        print(f"  {size / 1024:7.1f} KB  {event}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
