"""Coroutine activities on the real engine: registered as such, awaited, holding no thread.

`Registry.activity` wraps every activity; the wrapper must stay a coroutine function for an
`async def`, or the SDK would run it on a pool thread and send back an un-awaited coroutine.
The worker here has two pool threads and runs six activities that each wait until all six
have started: that can only finish if a waiting activity holds no thread.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_stack import EmbeddedStack
from fte.worker import Registry
from tests.support.engine import serving

pytestmark = pytest.mark.engine

WIDTH = 6


class Rendezvous:
    """Counts activities that have started; each waits until `WIDTH` have."""

    def __init__(self) -> None:
        self.started = 0
        self.lock = threading.Lock()

    async def meet(self, ctx: wf.WorkflowActivityContext, n: int) -> int:
        with self.lock:
            self.started += 1
        deadline = time.monotonic() + 30
        while self.started < WIDTH:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.started} of {WIDTH} activities ever started")
            await asyncio.sleep(0.01)
        return n * n


def fan_out(ctx: wf.DaprWorkflowContext, width: int) -> Generator[Any, Any, list[int]]:
    results: list[int] = yield wf.when_all(
        [ctx.call_activity("meet", input=n) for n in range(width)]
    )
    return results


def test_async_activities_wait_without_holding_a_thread(
    private_stack: EmbeddedStack, instance_id: str
) -> None:
    rendezvous = Rendezvous()

    def register(registry: Registry) -> None:
        registry.workflow("async_fan_out", fan_out)
        registry.activity("meet", rendezvous.meet)

    with serving(private_stack, register, threads=2) as client:
        client.schedule_new_workflow("async_fan_out", input=WIDTH, instance_id=instance_id)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=90)

    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == [n * n for n in range(WIDTH)]
    assert rendezvous.started == WIDTH
