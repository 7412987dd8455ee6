"""`fte doctor`: prove the runtime works end to end with one tiny workflow.

It starts (or connects to) the sidecar exactly as a research run would, runs a
workflow that calls an activity under a retry policy, and reports where each
piece came from, so a broken set-up is found before a long run is started.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf

from fte.dapr_clients import workflow_client
from fte.dapr_stack import dapr_runtime
from fte.errors import RuntimeSetupError
from fte.worker import Registry, WorkflowWorker

_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)


def _echo(ctx: wf.WorkflowActivityContext, text: str) -> str:
    return text.upper()


def _doctor_workflow(ctx: wf.DaprWorkflowContext, text: str) -> Generator[Any, Any, str]:
    shouted: str = yield ctx.call_activity("fte_doctor_echo", input=text, retry_policy=_RETRY)
    return shouted


def _register(registry: Registry) -> None:
    registry.workflow("fte_doctor", _doctor_workflow)
    registry.activity("fte_doctor_echo", _echo)


def run_doctor(data_dir: Path) -> dict[str, Any]:
    started = time.monotonic()
    with dapr_runtime(data_dir) as endpoint:
        ready = time.monotonic() - started
        with WorkflowWorker(
            host=endpoint.host,
            port=endpoint.grpc_port,
            register=_register,
            api_token=endpoint.api_token,
        ):
            client = workflow_client(endpoint)
            try:
                instance_id = f"doctor-{uuid.uuid4().hex[:8]}"
                client.schedule_new_workflow("fte_doctor", input="ok", instance_id=instance_id)
                state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
                if state is None or state.runtime_status != wf.WorkflowStatus.COMPLETED:
                    raise RuntimeSetupError(
                        f"the doctor workflow did not complete (state: {state}); "
                        "see the logs in the data directory"
                    )
                output = json.loads(state.serialized_output)
                client.purge_workflow(instance_id)
            finally:
                client.close()
    return {
        "runtime": endpoint.description,
        "ready_seconds": round(ready, 2),
        "workflow_output": output,
        "total_seconds": round(time.monotonic() - started, 2),
    }
