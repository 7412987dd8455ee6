"""A fan-in of child workflows never parks an event for daprd's one-second actor retry.

When children finish together, one execution of the parent takes several of their events
from its inbox, and the other events' reminders find it empty. Upstream daprd 1.18.2 then
deactivated the still-running parent, closing its lock under the reminders queued for the
next events; they failed ("actor is closed") and were retried a second later
(`sidecar/patches/workflow-empty-inbox-keeps-actor.patch` keeps the actor). Unpatched, this
test failed in 3 of 4 runs (a race: not every fan-in hits it). daprd's debug log names the
workflow of every such retry: none may name a workflow that was still running (a finished
one's leftover reminders may meet its deactivated actor; that delays nothing).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack
from fte.worker import Registry
from tests.support.engine import serving

pytestmark = pytest.mark.engine

WIDTH = 16
RETRY = re.compile(
    r"Error for operation DaprBuiltInActorNotFoundRetries was: "
    r"failed to invoke reminder for workflow '([^']+)'"
)
COMPLETED = re.compile(r"Workflow Actor '([^']+)': workflow completed")


@pytest.fixture
def debug_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(data_dir=tmp_path / "data", binaries=find_binaries(), log_level="debug")
    stack.start()
    yield stack
    stack.stop()


def retries_of_running_workflows(log: str) -> list[str]:
    """Workflows whose reminder met a closed actor before the workflow had completed."""
    completed: set[str] = set()
    delayed = []
    for line in log.splitlines():
        if done := COMPLETED.search(line):
            completed.add(done.group(1))
        elif (retry := RETRY.search(line)) and retry.group(1) not in completed:
            delayed.append(retry.group(1))
    return delayed


class Barrier:
    """Every child's activity returns at once, so their completions reach the parent together."""

    def __init__(self) -> None:
        self.arrived = 0
        self.expected = WIDTH
        self.lock = threading.Lock()

    def reset(self, expected: int) -> None:
        self.arrived, self.expected = 0, expected

    def meet(self, ctx: wf.WorkflowActivityContext, n: int) -> int:
        with self.lock:
            self.arrived += 1
        deadline = time.monotonic() + 30
        while self.arrived < self.expected and time.monotonic() < deadline:
            time.sleep(0.005)
        return n


def child(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, int]:
    result: int = yield ctx.call_activity("meet", input=n)
    return result


def parent(ctx: wf.DaprWorkflowContext, width: int) -> Generator[Any, Any, list[int]]:
    tasks: list[Any] = [
        ctx.call_child_workflow("fan_in_child", input=n, instance_id=f"{ctx.instance_id}.c{n}")
        for n in range(width)
    ]
    pending, done = list(tasks), []
    while pending:  # one parent turn per completion, as the coordinator's source fan-in
        finished = yield wf.when_any(pending)
        pending.remove(finished)
        done.append(finished.get_result())
    return sorted(done)


def test_children_finishing_together_reach_the_parent_without_a_retry(
    debug_stack: EmbeddedStack, instance_id: str
) -> None:
    barrier = Barrier()

    def register(registry: Registry) -> None:
        registry.workflow("fan_in_parent", parent)
        registry.workflow("fan_in_child", child)
        registry.activity("meet", barrier.meet)

    with serving(debug_stack, register) as client:
        for attempt in range(5):
            run = f"{instance_id}-{attempt}"
            barrier.reset(WIDTH)
            client.schedule_new_workflow("fan_in_parent", input=WIDTH, instance_id=run)
            state = client.wait_for_workflow_completion(run, timeout_in_seconds=90)
            assert state is not None
            assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
            assert json.loads(state.serialized_output) == list(range(WIDTH))
    log = (debug_stack.data_dir / "logs" / "daprd.log").read_text()
    delayed = retries_of_running_workflows(log)
    assert not delayed, f"daprd parked events of running workflows for a second: {delayed}"
