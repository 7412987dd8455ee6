"""An activity result too big for the engine fails its workflow at once, naming the activity."""

from __future__ import annotations

from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_stack import EmbeddedStack
from fte.worker import MAX_ACTIVITY_RESULT_BYTES, Registry
from tests.support.engine import serving

pytestmark = pytest.mark.engine

RETRY = wf.RetryPolicy(
    first_retry_interval=timedelta(milliseconds=100),
    max_number_of_attempts=4,
    retry_timeout=timedelta(seconds=30),
)


def oversized(ctx: wf.WorkflowActivityContext, inp: dict[str, Any]) -> str:
    with (Path(inp["count_dir"]) / "attempts").open("a") as attempts:
        attempts.write("x\n")
    return "x" * int(inp["size"])


def call_oversized(ctx: wf.DaprWorkflowContext, inp: dict[str, Any]) -> Generator[Any, Any, int]:
    result = yield ctx.call_activity("probe_oversized", input=inp, retry_policy=RETRY)
    return len(result)


def register(registry: Registry) -> None:
    registry.workflow("probe_oversized_wf", call_oversized)
    registry.activity("probe_oversized", oversized)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(5 * 1024 * 1024, id="5MB-over-the-grpc-limit"),
        pytest.param(MAX_ACTIVITY_RESULT_BYTES + 1, id="just-over-our-limit"),
    ],
)
def test_oversized_activity_result_fails_fast_without_retries(
    private_stack: EmbeddedStack, tmp_path: Path, size: int
) -> None:
    with serving(private_stack, register) as client:
        client.schedule_new_workflow(
            "probe_oversized_wf",
            input={"count_dir": str(tmp_path), "size": size},
            instance_id="oversized",
        )
        state = client.wait_for_workflow_completion("oversized", timeout_in_seconds=60)
    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.FAILED, state.serialized_output
    assert state.failure_details is not None
    message = state.failure_details.message
    assert "probe_oversized" in message and "limit" in message, message
    assert len(message) < 500
    assert (tmp_path / "attempts").read_text().count("x") == 1, "a permanent error is not retried"


def test_result_under_the_limit_passes(private_stack: EmbeddedStack, tmp_path: Path) -> None:
    with serving(private_stack, register) as client:
        client.schedule_new_workflow(
            "probe_oversized_wf",
            input={"count_dir": str(tmp_path), "size": MAX_ACTIVITY_RESULT_BYTES - 1000},
            instance_id="fits",
        )
        state = client.wait_for_workflow_completion("fits", timeout_in_seconds=60)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
