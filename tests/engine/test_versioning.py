"""Workflow versioning on the real engine: a run keeps the code it started with.

Each test starts a run on one worker, stops that worker while the run waits for
the event 'go', and finishes the run on a worker with changed code, the way a
deployment upgrades the coordinator under a running report.

The engine records a run's version name (and the patches it has taken) on the
`workflowStarted` event of each history chunk; `_recorded_versions` reads them
back through the sidecar's GetInstanceHistory call, which the SDK's client does
not expose.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import grpc
import pytest
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2 as pb
from dapr.ext.workflow._durabletask.internal import orchestrator_service_pb2_grpc as stubs

from fte.dapr_stack import RuntimeEndpoint
from fte.worker import Registry, WorkflowWorker
from tests.engine import probe_app

pytestmark = pytest.mark.engine

TIMEOUT_S = 60
WORKFLOW = "vprobe"
WAITING = "waiting for go"

Steps = Generator[Any, Any, list[str]]


def _step(ctx: wf.DaprWorkflowContext, count_dir: str, letter: str) -> Any:
    """Call activity `letter`; it counts its runs per instance in `count_dir`."""
    return ctx.call_activity(
        f"vprobe_{letter}",
        input={"count_dir": count_dir, "key": f"{ctx.instance_id}-{letter}"},
    )


def _v1(ctx: wf.DaprWorkflowContext, count_dir: str) -> Steps:
    ctx.set_custom_status(WAITING)
    yield ctx.wait_for_external_event("go")
    yield _step(ctx, count_dir, "a")
    return ["a"]


def _v2(ctx: wf.DaprWorkflowContext, count_dir: str) -> Steps:
    """v1 with an extra stage: replaying a v1 history on it would schedule 'b'."""
    ctx.set_custom_status(WAITING)
    yield ctx.wait_for_external_event("go")
    yield _step(ctx, count_dir, "a")
    yield _step(ctx, count_dir, "b")
    return ["a", "b"]


def _patched(ctx: wf.DaprWorkflowContext, count_dir: str) -> Steps:
    """v1 changed in place: a stage before the wait and one after it, each behind a patch."""
    steps = []
    if ctx.is_patched("b-before-wait"):
        yield _step(ctx, count_dir, "b")
        steps.append("b")
    ctx.set_custom_status(WAITING)
    yield ctx.wait_for_external_event("go")
    yield _step(ctx, count_dir, "a")
    steps.append("a")
    if ctx.is_patched("c-after-a"):
        yield _step(ctx, count_dir, "c")
        steps.append("c")
    return steps


# version name -> (workflow, latest)
Versions = dict[str | None, tuple[Callable[..., Any], bool]]


def _worker(endpoint: RuntimeEndpoint, versions: Versions) -> WorkflowWorker:
    """A worker serving `versions` of WORKFLOW (key None: unversioned) and the activities."""

    def register(registry: Registry) -> None:
        for version, (fn, latest) in versions.items():
            registry.workflow(WORKFLOW, fn, version=version, latest=latest)
        for letter in "abc":
            registry.activity(f"vprobe_{letter}", probe_app.record)

    return WorkflowWorker.on(endpoint, register)


def _wait_for_status(
    client: wf.DaprWorkflowClient, instance_id: str, done: Callable[[wf.WorkflowState], bool]
) -> wf.WorkflowState:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        state = client.get_workflow_state(instance_id)
        if state is not None and done(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance_id} never got there; last state: {state}")
        time.sleep(0.05)


def _start_waiting(client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path) -> None:
    """Start a run and return once a worker has run it up to the wait (its first chunk is saved)."""
    client.schedule_new_workflow(WORKFLOW, input=str(count_dir), instance_id=instance_id)
    _wait_for_status(client, instance_id, lambda s: s.serialized_custom_status == WAITING)


def _finish(client: wf.DaprWorkflowClient, instance_id: str) -> list[str]:
    client.raise_workflow_event(instance_id, "go")
    state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None
    assert state.runtime_status == wf.WorkflowStatus.COMPLETED, state.failure_details
    steps: list[str] = json.loads(state.serialized_output)
    return steps


def _executed(count_dir: Path, instance_id: str) -> set[str]:
    return {p.name.removesuffix(".count")[-1] for p in count_dir.glob(f"{instance_id}-?.count")}


def _history(endpoint: RuntimeEndpoint, instance_id: str) -> list[Any]:
    with grpc.insecure_channel(f"{endpoint.host}:{endpoint.grpc_port}") as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        request = pb.GetInstanceHistoryRequest(instanceId=instance_id)
        token = (("dapr-api-token", endpoint.api_token),) if endpoint.api_token else None
        return list(stub.GetInstanceHistory(request, timeout=TIMEOUT_S, metadata=token).events)


def _recorded_versions(endpoint: RuntimeEndpoint, instance_id: str) -> list[str]:
    """The version name on each workflowStarted event ('' where none is recorded)."""
    return [
        e.workflowStarted.version.name
        for e in _history(endpoint, instance_id)
        if e.WhichOneof("eventType") == "workflowStarted"
    ]


def _recorded_patches(endpoint: RuntimeEndpoint, instance_id: str) -> list[str]:
    """The patches in the order the engine recorded them (each once, on its first chunk)."""
    return [
        patch
        for e in _history(endpoint, instance_id)
        if e.WhichOneof("eventType") == "workflowStarted"
        for patch in e.workflowStarted.version.patches
    ]


def test_run_started_on_v1_finishes_on_v1_after_upgrade_to_v2(
    dapr_stack: RuntimeEndpoint, wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    with _worker(dapr_stack, {"v1": (_v1, True)}):
        _start_waiting(wf_client, instance_id, count_dir)
    assert _recorded_versions(dapr_stack, instance_id) == ["v1"]

    new_run = f"{instance_id}-new"
    with _worker(dapr_stack, {"v1": (_v1, False), "v2": (_v2, True)}):
        assert _finish(wf_client, instance_id) == ["a"]
        _start_waiting(wf_client, new_run, count_dir)
        assert _finish(wf_client, new_run) == ["a", "b"]

    assert _executed(count_dir, instance_id) == {"a"}
    assert _executed(count_dir, new_run) == {"a", "b"}
    assert set(_recorded_versions(dapr_stack, instance_id)) == {"v1"}
    assert set(_recorded_versions(dapr_stack, new_run)) == {"v2"}


def test_worker_without_the_runs_version_stalls_it_until_one_with_it_connects(
    dapr_stack: RuntimeEndpoint, wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    """A rollout that drops v1 too early parks v1 runs (STALLED) instead of failing them."""
    with _worker(dapr_stack, {"v1": (_v1, True)}):
        _start_waiting(wf_client, instance_id, count_dir)
    with _worker(dapr_stack, {"v2": (_v2, True)}):
        wf_client.raise_workflow_event(instance_id, "go")
        _wait_for_status(
            wf_client, instance_id, lambda s: s.runtime_status == wf.WorkflowStatus.STALLED
        )
        stalled = [
            e.executionStalled
            for e in _history(dapr_stack, instance_id)
            if e.WhichOneof("eventType") == "executionStalled"
        ]
        assert [s.description for s in stalled] == ["Version not available: v1"]
        # The engine refuses new events for a stalled run; the one raised before is kept.
        with pytest.raises(grpc.RpcError, match="actor is stalled"):
            wf_client.raise_workflow_event(instance_id, "go")
    with _worker(dapr_stack, {"v1": (_v1, False), "v2": (_v2, True)}):
        state = wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output) == ["a"]
    assert _executed(count_dir, instance_id) == {"a"}


def test_run_started_before_versioning_replays_on_the_latest_version(
    dapr_stack: RuntimeEndpoint, wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    """A history with no version name gets the latest version, not the first one.

    So a workflow adopts versions in two deployments: first its current code as
    the only (latest) version, and a changed version only after every run started
    before that first deployment has finished.
    """
    with _worker(dapr_stack, {None: (_v1, False)}):
        _start_waiting(wf_client, instance_id, count_dir)
    assert _recorded_versions(dapr_stack, instance_id) == [""]
    with _worker(dapr_stack, {"v1": (_v1, False), "v2": (_v2, True)}):
        assert _finish(wf_client, instance_id) == ["a", "b"]
    assert _recorded_versions(dapr_stack, instance_id)[0] == ""
    assert set(_recorded_versions(dapr_stack, instance_id)[1:]) == {"v2"}


def test_is_patched_is_false_for_code_a_run_passed_before_the_patch(
    dapr_stack: RuntimeEndpoint, wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    """`is_patched` is False only where a run replays code it ran before the patch existed."""
    with _worker(dapr_stack, {None: (_v1, False)}):
        _start_waiting(wf_client, instance_id, count_dir)

    new_run = f"{instance_id}-new"
    with _worker(dapr_stack, {None: (_patched, False)}):
        # The old run passed 'b-before-wait' unpatched, but reaches 'c-after-a' on new code.
        assert _finish(wf_client, instance_id) == ["a", "c"]
        _start_waiting(wf_client, new_run, count_dir)
        assert _finish(wf_client, new_run) == ["b", "a", "c"]

    assert _executed(count_dir, instance_id) == {"a", "c"}
    assert _recorded_patches(dapr_stack, instance_id) == ["c-after-a"]
    assert _recorded_patches(dapr_stack, new_run) == ["b-before-wait", "c-after-a"]


def test_worker_that_drops_a_recorded_patch_stalls_the_run(
    dapr_stack: RuntimeEndpoint, wf_client: wf.DaprWorkflowClient, instance_id: str, count_dir: Path
) -> None:
    """Removing an `is_patched` check while runs that took it are in flight parks them.

    Putting the check back releases them.
    """
    with _worker(dapr_stack, {None: (_patched, False)}):
        _start_waiting(wf_client, instance_id, count_dir)
    with _worker(dapr_stack, {None: (_v1, False)}):
        wf_client.raise_workflow_event(instance_id, "go")
        _wait_for_status(
            wf_client, instance_id, lambda s: s.runtime_status == wf.WorkflowStatus.STALLED
        )
    descriptions = [
        e.executionStalled.description
        for e in _history(dapr_stack, instance_id)
        if e.WhichOneof("eventType") == "executionStalled"
    ]
    assert descriptions == [
        "Patch mismatch. History patches: [b-before-wait], current patches: []. "
    ]
    with _worker(dapr_stack, {None: (_patched, False)}):
        state = wf_client.wait_for_workflow_completion(instance_id, timeout_in_seconds=TIMEOUT_S)
    assert state is not None and state.runtime_status == wf.WorkflowStatus.COMPLETED
    assert json.loads(state.serialized_output) == ["b", "a", "c"]
