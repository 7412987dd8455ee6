"""Benchmark: the stored size of a schedule's workflow state as the number of fires grows.

Runs the real schedule loop (`research.schedule`, registered as `fte.wiring` does) on an
embedded stack with a short interval, with the fire activity replaced by one that starts
no run (the loop's own history is what is measured), and reads the schedule instance's
rows straight from the SQLite state store after 10, 50, 100, 250 and 500 fires.
Each execution ends in continue_as_new, so the size should not grow with the fires.

    python benchmarks/schedule_history.py [--fires 500] [--every 0.25]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import grpc

from fte import names
from fte.contracts import RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack
from fte.logs import configure_logging
from fte.schedule import workflow as schedule_workflow
from fte.schedule.contracts import (
    FireInput,
    FireResult,
    ScheduleInput,
    ScheduleSpec,
    ScheduleState,
    ScheduleStatus,
)
from fte.schedule.timing import iso
from fte.worker import Registry, WorkflowWorker

CHECKPOINTS = (10, 50, 100, 250, 500, 1000, 2000)


def fire_nothing(ctx: wf.WorkflowActivityContext, raw: dict[str, Any]) -> dict[str, Any]:
    inp = FireInput.model_validate(raw)
    return FireResult(outcome="started", run_id=inp.run_id).model_dump(mode="json")


def register(registry: Registry) -> None:
    for version, loop in schedule_workflow.VERSIONS.items():
        registry.workflow(
            names.SCHEDULE, loop, version=version, latest=version == schedule_workflow.LATEST
        )
    registry.activity(names.SCHEDULE_FIRE, fire_nothing)


def stored(db: Path, instance: str) -> tuple[int, int]:
    """Rows and bytes (keys + values) of the instance's actor state."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM state "
            "WHERE key LIKE ?",
            (f"%{instance}%",),
        ).fetchone()
    return int(rows[0]), int(rows[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fires", type=int, default=500)
    parser.add_argument("--every", type=float, default=0.25, help="interval in seconds")
    args = parser.parse_args()
    configure_logging()
    binaries = find_binaries()
    instance = names.schedule_instance("bench")
    now = iso(datetime.now(UTC))
    spec = ScheduleSpec(
        name="bench",
        run=RunConfig(query="benchmark", corpus_dir="/nonexistent"),
        every_s=args.every,
        catchup_window_s=3600,
        created_at=now,
    )
    with (
        tempfile.TemporaryDirectory(prefix="fte-schedule-", ignore_cleanup_errors=True) as data,
        EmbeddedStack(data_dir=Path(data), binaries=binaries) as endpoint,
        WorkflowWorker.on(endpoint, register),
    ):
        data_dir = Path(data)
        client = workflow_client(endpoint)
        start = ScheduleInput(spec=spec, state=ScheduleState(cursor=now))
        client.schedule_new_workflow(
            names.SCHEDULE, input=start.model_dump(mode="json"), instance_id=instance
        )
        began = time.monotonic()
        print(f"interval {args.every}s; state store {data_dir / 'state.db'}")
        print(
            f"{'fires':>6} {'started':>8} {'missed':>7} {'executions':>10} "
            f"{'rows':>5} {'bytes':>8} {'elapsed':>8}"
        )
        for checkpoint in [c for c in CHECKPOINTS if c <= args.fires]:
            while True:
                try:
                    state = client.get_workflow_state(instance, fetch_payloads=True)
                except grpc.RpcError:  # a read racing the engine's write: read again
                    continue
                assert state is not None
                raw = state.serialized_custom_status
                status = ScheduleStatus.model_validate_json(raw) if raw else None
                if status is not None and status.fires >= checkpoint:
                    break
                time.sleep(0.05)
            rows, size = stored(data_dir / "state.db", instance)
            print(
                f"{status.fires:>6} {status.started:>8} {status.skipped_missed:>7} "
                f"{status.executions:>10} {rows:>5} {size:>8} "
                f"{time.monotonic() - began:>7.1f}s",
                flush=True,
            )
        client.terminate_workflow(instance)
        client.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
