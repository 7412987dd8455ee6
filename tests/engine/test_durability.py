"""Durability on the real engine: a killed worker and a restarted stack lose no progress."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from fte.dapr_clients import workflow_client
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from tests.support.processes import LoggedProcess, wait_for

pytestmark = pytest.mark.engine

TIMEOUT_S = 90


def _executions(count_dir: Path, key: str) -> int:
    path = count_dir / f"{key}.count"
    return len(path.read_text().splitlines()) if path.exists() else 0


class WorkerProcess(LoggedProcess):
    """`python -m tests.engine.probe_app` in its own process, as a deployed worker would run."""

    def __init__(self, endpoint: RuntimeEndpoint, tmp: Path, name: str) -> None:
        ready_file = tmp / f"{name}.ready"
        super().__init__(
            [
                sys.executable, "-m", "tests.engine.probe_app",
                "--host", str(endpoint.host), "--port", str(endpoint.grpc_port),
                "--ready-file", str(ready_file),
            ],
            tmp / f"{name}.log",
            # As under `dapr run`: the SDK reads the sidecar's token from the environment.
            env={**os.environ, "DAPR_API_TOKEN": endpoint.api_token or ""},
        )  # fmt: skip
        wait_for(lambda: self.alive() and ready_file.exists(), f"worker {name}", timeout=60)


def _client(endpoint: RuntimeEndpoint) -> wf.DaprWorkflowClient:
    return workflow_client(endpoint)


def test_killed_worker_resumes_without_redoing_finished_activities(
    private_stack: EmbeddedStack, tmp_path: Path, count_dir: Path, instance_id: str
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    first_worker = WorkerProcess(endpoint, tmp_path, "worker-1")
    client = _client(endpoint)
    try:
        client.schedule_new_workflow(
            "probe_durable", input={"count_dir": str(count_dir)}, instance_id=instance_id
        )
        # The first activity has completed once the second one has started.
        wait_for(lambda: _executions(count_dir, "second") == 1, "the gated activity to start")
        first_worker.sigkill()

        second_worker = WorkerProcess(endpoint, tmp_path, "worker-2")
        try:
            (count_dir / "release").write_text("go")
            state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
            assert state is not None
            assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
            assert _executions(count_dir, "first") == 1
            # The in-flight activity died with its worker, so it ran again (at-least-once).
            assert _executions(count_dir, "second") == 2
            assert json.loads(state.serialized_output) == {"first": 1, "second": 2, "third": 1}
        finally:
            second_worker.stop()
    finally:
        first_worker.stop()
        client.close()


def test_stack_restart_mid_workflow_completes_on_same_data_dir(
    private_stack: EmbeddedStack, tmp_path: Path, count_dir: Path, instance_id: str
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    worker = WorkerProcess(endpoint, tmp_path, "worker")
    client = _client(endpoint)
    try:
        client.schedule_new_workflow(
            "probe_durable", input={"count_dir": str(count_dir)}, instance_id=instance_id
        )
        wait_for(lambda: _executions(count_dir, "second") == 1, "the gated activity to start")

        private_stack.stop()
        restarted = private_stack.start()
        assert restarted.grpc_port == endpoint.grpc_port, "ports are kept per data directory"

        (count_dir / "release").write_text("go")
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
        assert state is not None
        assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
        assert _executions(count_dir, "first") == 1
        assert _executions(count_dir, "third") == 1
    finally:
        worker.stop()
        client.close()
