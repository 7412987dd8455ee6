"""The first workflow a fresh stack is sent, racing its worker's registration.

`fte research` starts a stack, connects its worker and schedules the run at once. The
worker's workflow actor types reach placement's table a moment after its stream opens,
and a run scheduled in that moment found no actor type. On daprd 1.18.2 that lookup kept
an in-flight claim on the type, so the dissemination adding the type waited out its 2 s
drain timeout for it; the run then started after the next one-second retry
(sidecar/patches/placement-lookup-releases-claim.patch and
actor-not-found-retry-interval.patch). Scheduling before the worker connects is that race,
every time.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack
from fte.worker import Registry
from tests.support.engine import serving

pytestmark = pytest.mark.engine

LEAKED_CLAIM = "in-flight lock claims to be released"


def add_one(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return n + 1


def one_step(ctx: wf.DaprWorkflowContext, n: int) -> Generator[Any, Any, int]:
    result: int = yield ctx.call_activity("first_add_one", input=n)
    return result


def register(registry: Registry) -> None:
    registry.workflow("first_one_step", one_step)
    registry.activity("first_add_one", add_one)


def test_a_run_scheduled_before_its_worker_connects_starts_once_the_worker_is_there(
    private_stack: EmbeddedStack,
) -> None:
    assert private_stack.endpoint is not None
    client = workflow_client(private_stack.endpoint)
    scheduled = threading.Event()
    failures: list[BaseException] = []

    def schedule() -> None:
        try:  # daprd holds the call, retrying, until some worker hosts the workflow type
            client.schedule_new_workflow("first_one_step", input=41, instance_id="first")
            scheduled.set()
        except BaseException as exc:  # reported by the test's own thread below
            failures.append(exc)

    scheduler = threading.Thread(target=schedule)
    scheduler.start()
    try:
        # Until daprd has turned the request down once, for want of the actor type.
        log_path = private_stack.data_dir / "logs" / "daprd.log"
        for _ in range(100):
            if "DaprBuiltInActorNotFoundRetries" in log_path.read_text():
                break
            scheduler.join(0.05)
        assert not scheduled.is_set() and not failures
        with serving(private_stack, register) as served:
            scheduler.join(30)
            assert scheduled.is_set(), failures
            state = served.wait_for_workflow_completion("first", timeout_in_seconds=30)
            assert state is not None and state.serialized_output == "42"
    finally:
        scheduler.join(30)
        client.close()
    log = log_path.read_text()
    assert LEAKED_CLAIM not in log, "a failed lookup's claim held up the dissemination"
    retries = [line for line in log.splitlines() if "Retrying in" in line]
    assert retries and all("Retrying in 100ms" in line for line in retries), retries
