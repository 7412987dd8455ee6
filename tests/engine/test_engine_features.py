"""Each Dapr workflow feature the pipeline relies on, exercised on the real engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from fte.dapr_stack import RuntimeEndpoint
from fte.worker import WorkflowWorker
from tests.engine import probe_app

pytestmark = pytest.mark.engine

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def probe_worker(dapr_stack: RuntimeEndpoint) -> Iterator[WorkflowWorker]:
    with WorkflowWorker(
        host=dapr_stack.host,
        port=dapr_stack.grpc_port,
        register=probe_app.register,
        api_token=dapr_stack.api_token,
    ) as worker:
        yield worker


def _complete(client: wf.DaprWorkflowClient, name: str, instance_id: str, inp: object) -> object:
    client.schedule_new_workflow(name, input=inp, instance_id=instance_id)
    state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
    return json.loads(state.serialized_output)


@pytest.mark.usefixtures("probe_worker")
def test_activity_retry_policy_retries_until_success(
    wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    result = _complete(
        wf_client,
        "probe_retry",
        instance_id,
        {"count_dir": str(count_dir), "key": "flaky", "fail_times": 2},
    )
    assert result == 3
    assert len((count_dir / "flaky.count").read_text().splitlines()) == 3


@pytest.mark.usefixtures("probe_worker")
def test_retry_policy_gives_up_after_max_attempts(
    wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    wf_client.schedule_new_workflow(
        "probe_retry",
        input={"count_dir": str(count_dir), "key": "flaky", "fail_times": 99},
        instance_id=instance_id,
    )
    state = wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.FAILED
    assert "injected failure on attempt 5" in state.failure_details.message
    assert len((count_dir / "flaky.count").read_text().splitlines()) == 5


@pytest.mark.usefixtures("probe_worker")
def test_fan_out_with_when_all(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    assert _complete(wf_client, "probe_fanout", instance_id, [1, 2, 3, 4, 5]) == 55


@pytest.mark.usefixtures("probe_worker")
def test_child_workflow(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    result = _complete(wf_client, "probe_parent", instance_id, 7)
    assert result == {"parent_id": instance_id, "child_id": f"{instance_id}-child", "squared": 49}
    child = wf_client.get_workflow_state(f"{instance_id}-child")
    assert child is not None and child.runtime_status == wf.WorkflowStatus.COMPLETED


@pytest.mark.usefixtures("probe_worker")
def test_durable_timer(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    elapsed = _complete(wf_client, "probe_timer", instance_id, 1.5)
    assert isinstance(elapsed, float) and elapsed >= 1.5


@pytest.mark.usefixtures("probe_worker")
def test_external_event_answers_wait(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    wf_client.schedule_new_workflow("probe_approval", input=60, instance_id=instance_id)
    wf_client.wait_for_workflow_start(instance_id, timeout_in_seconds=TIMEOUT_S)
    wf_client.raise_workflow_event(instance_id, "approval", data={"approved": True})
    state = wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output) == {
        "outcome": "event",
        "payload": {"approved": True},
    }


@pytest.mark.usefixtures("probe_worker")
def test_external_event_times_out(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    assert _complete(wf_client, "probe_approval", instance_id, 1) == {"outcome": "timeout"}


@pytest.mark.usefixtures("probe_worker")
def test_terminate_and_purge(wf_client: wf.DaprWorkflowClient, instance_id: str) -> None:
    wf_client.schedule_new_workflow("probe_waiting", input=None, instance_id=instance_id)
    wf_client.wait_for_workflow_start(instance_id, timeout_in_seconds=TIMEOUT_S)
    wf_client.terminate_workflow(instance_id)
    state = wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.TERMINATED
    wf_client.purge_workflow(instance_id)
    assert wf_client.get_workflow_state(instance_id) is None
