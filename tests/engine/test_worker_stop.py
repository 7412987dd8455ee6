"""Stopping a worker while an activity runs: its result reaches its workflow first.

`WorkflowWorker.stop` waits until every activity's result has been sent (the SDK's activity
handlers are wrapped, `fte.worker._count_until_sent`) and then a short grace, in which daprd
forwards it to the workflow: closing the work stream at once after the send unregisters the
workflow types, the forward fails and the activity is delivered again to the next worker
(this test failed so). Here it must have run exactly once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack
from fte.worker import Registry, WorkflowWorker

pytestmark = pytest.mark.engine


class Slow:
    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()

    def run(self, ctx: wf.WorkflowActivityContext, n: int) -> int:
        self.calls += 1
        self.started.set()
        time.sleep(0.5)
        return n + 1


def one_slow_step(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, int]:
    result: int = yield ctx.call_activity("slow", input=n)
    return result


def test_stop_waits_until_the_running_activitys_result_is_sent(
    private_stack: EmbeddedStack, instance_id: str
) -> None:
    slow = Slow()

    def register(registry: Registry) -> None:
        registry.workflow("one_slow_step", one_slow_step)
        registry.activity("slow", slow.run)

    endpoint = private_stack.endpoint
    assert endpoint is not None

    def worker() -> WorkflowWorker:
        return WorkflowWorker.on(endpoint, register)

    client = workflow_client(endpoint)
    try:
        first = worker()
        assert first._unsent is not None, "this SDK's activity handlers could not be wrapped"
        first.start()
        client.schedule_new_workflow("one_slow_step", input=41, instance_id=instance_id)
        assert slow.started.wait(30), "the activity never started"
        first.stop()  # the activity is still sleeping: stop must let it finish and report
        with worker():
            state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
    finally:
        client.close()

    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == 42
    assert slow.calls == 1, "the result was lost on stop, so the activity ran again"
