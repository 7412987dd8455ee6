"""Small workflows that exercise one engine feature each, for the engine tests.

They live in an importable module (not in a test file) because the durability
tests register them in a separate worker process started with
`python -m tests.engine.probe_app --host H --port P`.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable, Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf

from fte.worker import Registry, WorkflowWorker

# Short intervals keep the suite fast; the policy shape matches production ones.
FLAKY_RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=200),
    max_number_of_attempts=5,
    backoff_coefficient=1.5,
    retry_timeout=timedelta(seconds=30),
)


def _count(directory: str, key: str) -> int:
    """Append one line per execution and return how many there have been."""
    path = Path(directory) / f"{key}.count"
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


def flaky(ctx: wf.WorkflowActivityContext, inp: dict[str, Any]) -> int:
    attempt = _count(inp["count_dir"], inp["key"])
    if attempt <= int(inp["fail_times"]):
        raise RuntimeError(f"injected failure on attempt {attempt}")
    return attempt


def square(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n * n


def record(ctx: wf.WorkflowActivityContext, inp: dict[str, Any]) -> int:
    return _count(inp["count_dir"], inp["key"])


def gated(ctx: wf.WorkflowActivityContext, inp: dict[str, Any]) -> int:
    """Counts its execution, then blocks until the test creates the release file."""
    executions = _count(inp["count_dir"], inp["key"])
    release = Path(inp["count_dir"]) / "release"
    deadline = time.monotonic() + 120
    while not release.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("release file never appeared")
        time.sleep(0.05)
    return executions


def retry_wf(ctx: wf.DaprWorkflowContext, inp: dict[str, Any]) -> Generator[Any, Any, int]:
    attempts: int = yield ctx.call_activity("probe_flaky", input=inp, retry_policy=FLAKY_RETRY)
    return attempts


def fanout_wf(ctx: wf.DaprWorkflowContext, numbers: list[int]) -> Generator[Any, Any, int]:
    results: list[int] = yield wf.when_all(
        [ctx.call_activity("probe_square", input=n) for n in numbers]
    )
    return sum(results)


def child_wf(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, dict[str, Any]]:
    squared: int = yield ctx.call_activity("probe_square", input=n)
    return {"child_id": ctx.instance_id, "squared": squared}


def parent_wf(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, dict[str, Any]]:
    result: dict[str, Any] = yield ctx.call_child_workflow(
        "probe_child", input=n, instance_id=f"{ctx.instance_id}-child"
    )
    return {"parent_id": ctx.instance_id, **result}


def timer_wf(ctx: wf.DaprWorkflowContext, seconds: float) -> Generator[Any, Any, float]:
    started = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - started).total_seconds()


def approval_wf(ctx: wf.DaprWorkflowContext, timeout_s: float) -> Generator[Any, Any, Any]:
    event = ctx.wait_for_external_event("approval")
    timeout = ctx.create_timer(timedelta(seconds=timeout_s))
    winner = yield wf.when_any([event, timeout])
    if winner == timeout:
        return {"outcome": "timeout"}
    return {"outcome": "event", "payload": event.get_result()}


def waiting_wf(ctx: wf.DaprWorkflowContext, _: Any) -> Generator[Any, Any, str]:
    yield ctx.wait_for_external_event("never")
    return "unreachable"


def durable_wf(ctx: wf.DaprWorkflowContext, inp: dict[str, Any]) -> Generator[Any, Any, Any]:
    first: int = yield ctx.call_activity("probe_record", input={**inp, "key": "first"})
    second: int = yield ctx.call_activity("probe_gated", input={**inp, "key": "second"})
    third: int = yield ctx.call_activity("probe_record", input={**inp, "key": "third"})
    return {"first": first, "second": second, "third": third}


WORKFLOWS: dict[str, Callable[..., Any]] = {
    "probe_retry": retry_wf,
    "probe_fanout": fanout_wf,
    "probe_child": child_wf,
    "probe_parent": parent_wf,
    "probe_timer": timer_wf,
    "probe_approval": approval_wf,
    "probe_waiting": waiting_wf,
    "probe_durable": durable_wf,
}
ACTIVITIES: dict[str, Callable[..., Any]] = {
    "probe_flaky": flaky,
    "probe_square": square,
    "probe_record": record,
    "probe_gated": gated,
}


def register(registry: Registry) -> None:
    for name, workflow in WORKFLOWS.items():
        registry.workflow(name, workflow)
    for name, activity in ACTIVITIES.items():
        registry.activity(name, activity)


def main() -> None:
    parser = argparse.ArgumentParser(description="Worker process serving the probe workflows")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with WorkflowWorker(host=args.host, port=args.port, register=register):
        args.ready_file.write_text("ready")
        stop.wait()


if __name__ == "__main__":
    main()
