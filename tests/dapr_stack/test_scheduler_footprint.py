"""The scheduler's etcd forgets old revisions, and the engine works on across compactions.

The launcher runs the embedded scheduler with periodic compaction and two WAL files
(`fte.dapr_stack.ETCD_FOOTPRINT_FLAGS`) instead of Dapr's server defaults, which keep a
million revisions (about 12,500 research runs at 80 revisions each) in a bbolt file that
never shrinks. Here the retention is cut to a second so that compactions happen within the
test: workflows keep starting, scheduling activities and completing across them, and etcd
really has dropped the old revisions (asking for one is refused as compacted).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Generator
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import pytest

from fte.dapr_build import find_binaries
from fte.dapr_stack import ETCD_FOOTPRINT_FLAGS, EmbeddedStack
from fte.worker import Registry
from tests.support.engine import serving
from tests.support.processes import wait_for

pytestmark = pytest.mark.engine


def double(ctx: wf.WorkflowActivityContext, n: int) -> int:
    return 2 * n


def fan_out(ctx: wf.DaprWorkflowContext, width: int) -> Generator[Any, Any, int]:
    results = yield wf.when_all([ctx.call_activity("double", input=n) for n in range(width)])
    return sum(results)


def register(registry: Registry) -> None:
    registry.workflow("fan_out", fan_out)
    registry.activity("double", double)


def etcd_range(port: int, revision: int | None = None) -> dict[str, Any]:
    """etcd's JSON gateway: a read of one key, at `revision` if given."""
    body: dict[str, Any] = {"key": base64.b64encode(b"fte-probe").decode()}
    if revision is not None:
        body["revision"] = revision
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v3/kv/range", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.loads(response.read())
    return result


def compacted(port: int, revision: int) -> bool:
    try:
        etcd_range(port, revision)
    except urllib.error.HTTPError as exc:
        return "compacted" in exc.read().decode()
    return False


def run_wave(client: wf.DaprWorkflowClient, wave: int, runs: int = 10, width: int = 5) -> None:
    ids = [
        client.schedule_new_workflow(fan_out, input=width, instance_id=f"w{wave}-{n}")
        for n in range(runs)
    ]
    for instance_id in ids:
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=60)
        assert state is not None and state.runtime_status.name == "COMPLETED", state
        assert json.loads(state.serialized_output or "null") == sum(2 * n for n in range(width))


def test_workflows_run_on_across_the_schedulers_compactions(tmp_path: Path) -> None:
    assert "periodic" in ETCD_FOOTPRINT_FLAGS and "--etcd-max-wals" in ETCD_FOOTPRINT_FLAGS
    stack = EmbeddedStack(
        data_dir=tmp_path / "data",
        binaries=find_binaries(),
        # After the launcher's own flags, so this retention wins.
        extra_flags={"scheduler": ("--etcd-compaction-retention", "1s")},
    )
    with stack, serving(stack, register) as client:
        port = stack.ports["scheduler_etcd_client"]
        run_wave(client, 0)
        first = int(etcd_range(port)["header"]["revision"])
        assert first > 100  # each activity is several revisions of job keys
        run_wave(client, 1)
        wait_for(lambda: compacted(port, first), "a compaction past the first wave", 30)
        run_wave(client, 2)  # jobs are scheduled and fire after the compaction too
        assert int(etcd_range(port)["header"]["revision"]) > first
