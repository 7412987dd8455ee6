"""`fte doctor`: prove the runtime works end to end with one tiny workflow.

It starts (or connects to) the sidecar exactly as a research run would, says which state
store, pub/sub and tracing that sidecar uses (its metadata API), runs a workflow that calls
an activity under a retry policy, and reports where each piece came from, so a broken
set-up is found before a long run is started.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Generator
from datetime import timedelta
from pathlib import Path
from typing import Any

import dapr.ext.workflow as wf
import structlog
import yaml

from fte.artifacts import STORE_NAME
from fte.dapr_clients import close_dapr_client, dapr_client, workflow_client
from fte.dapr_stack import (
    DEFAULT_COMPONENTS_DIR,
    RuntimeEndpoint,
    dapr_runtime,
    external_endpoint,
)
from fte.errors import RuntimeSetupError, UsageError
from fte.worker import Registry, WorkflowWorker

log = structlog.get_logger(__name__)

# State stores meant for one machine; any other type is a production store, which must hold
# the actors (workflow history, timers) when the app's artifacts go there.
_DEVELOPMENT_STATE_TYPES = frozenset({"state.sqlite", "state.in-memory"})


def _resources(directory: Path) -> list[dict[str, Any]]:
    """The Component and Configuration documents of a resources directory."""
    documents: list[dict[str, Any]] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            loaded = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise RuntimeSetupError(f"cannot read {path}: {exc}") from None
        documents += [d for d in loaded if isinstance(d, dict)]
    return documents


def _flag(component: dict[str, Any], name: str) -> bool:
    # daprd matches metadata names without regard to case.
    for item in (component.get("spec") or {}).get("metadata") or []:
        if str(item.get("name", "")).lower() == name.lower():
            return str(item.get("value", "")).lower() == "true"
    return False


def describe_sidecar(
    endpoint: RuntimeEndpoint, resources: Path | None
) -> tuple[dict[str, Any], list[str]]:
    """The sidecar's state stores, pub/subs and tracing, and what looks wrong with them.

    The metadata API lists the loaded components and whether a store *could* hold actors
    (its ACTOR capability), not which one does: that, `actorStateStore: "true"`, and the
    tracing settings are in the files the sidecar was started with, read from `resources`
    (the embedded stack's own, or `--resources-path`).
    """
    client = dapr_client(endpoint)
    try:
        metadata = client.get_metadata()
    finally:
        close_dapr_client(client)
    loaded = metadata.registered_components
    documents = _resources(resources) if resources is not None else []
    files = {
        str((d.get("metadata") or {}).get("name")): d
        for d in documents
        if d.get("kind") == "Component"
    }
    states = [c for c in loaded if c.type.startswith("state.")]
    warnings = []
    stores = []
    for store in states:
        declared = files.get(store.name)
        actor: bool | None = _flag(declared, "actorStateStore") if declared else None
        stores.append(
            {
                "name": store.name,
                "type": f"{store.type}/{store.version}",
                "actor_state_store": actor,
            }
        )
    actor_stores = [s["name"] for s in stores if s["actor_state_store"]]
    for entry, store in zip(stores, states, strict=True):
        if store.type in _DEVELOPMENT_STATE_TYPES or entry["actor_state_store"] is not False:
            continue
        where = f"'{actor_stores[0]}'" if actor_stores else "no store at all"
        warnings.append(
            f"state store '{store.name}' ({store.type}) lacks actorStateStore: \"true\": "
            f"workflow history and timers go to {where}; add the metadata item "
            'actorStateStore: "true" to its Component'
        )
    if resources is not None and not actor_stores:
        warnings.append(
            'no state store has actorStateStore: "true": the sidecar cannot run workflows'
        )
    if not any("ACTOR" in c.capabilities for c in states):
        warnings.append("no loaded state store can hold actors: the sidecar cannot run workflows")
    if STORE_NAME not in {c.name for c in states}:
        warnings.append(f"no state store named '{STORE_NAME}': runs cannot store artifacts")
    configurations = [d for d in documents if d.get("kind") == "Configuration"]
    return {
        "app_id": metadata.application_id,
        "resources": str(resources) if resources is not None else None,
        "state_stores": stores,
        "pubsubs": [
            {"name": c.name, "type": f"{c.type}/{c.version}"}
            for c in loaded
            if c.type.startswith("pubsub.")
        ],
        "tracing": {
            "sidecar": _sidecar_tracing(configurations[0] if configurations else None),
            "worker": _worker_tracing(),
        },
    }, warnings


def _sidecar_tracing(configuration: dict[str, Any] | None) -> str:
    if configuration is None:
        # The metadata API does not say; the Configuration the sidecar was started with does.
        return (
            "not reported by the Dapr metadata API: see spec.tracing of the sidecar's "
            "Configuration (or pass --resources-path with it)"
        )
    spec = (configuration.get("spec") or {}).get("tracing") or {}
    rate = str(spec.get("samplingRate", "0"))
    otel = (spec.get("otel") or {}).get("endpointAddress")
    if rate in ("0", "") or not otel:
        return f"off (samplingRate {rate})"
    return f"OTLP to {otel} (samplingRate {rate})"


def _worker_tracing() -> str:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        if os.environ.get(name):
            return f"LLM-call spans over OTLP to {os.environ[name]}"
    return "off (no OTEL_EXPORTER_OTLP_ENDPOINT)"


_RETRY = wf.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)


def _echo(ctx: wf.WorkflowActivityContext, text: str) -> str:
    return text.upper()


def _doctor_workflow(ctx: wf.DaprWorkflowContext, text: str) -> Generator[Any, Any, str]:
    shouted: str = yield ctx.call_activity("fte_doctor_echo", input=text, retry_policy=_RETRY)
    return shouted


def _register(registry: Registry) -> None:
    registry.workflow("fte_doctor", _doctor_workflow)
    registry.activity("fte_doctor_echo", _echo)


def run_doctor(data_dir: Path, resources: Path | None = None) -> dict[str, Any]:
    if resources is not None and not resources.is_dir():
        raise UsageError(f"--resources-path {resources} is not a directory")
    started = time.monotonic()
    with dapr_runtime(data_dir) as endpoint:
        ready = time.monotonic() - started
        if resources is None and external_endpoint() is None:
            resources = DEFAULT_COMPONENTS_DIR  # what the embedded stack was started with
        sidecar, warnings = describe_sidecar(endpoint, resources)
        for warning in warnings:
            log.warning(warning)
        with WorkflowWorker.on(endpoint, _register):
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
        "sidecar": sidecar,
        "warnings": warnings,
        "ready_seconds": round(ready, 2),
        "workflow_output": output,
        "total_seconds": round(time.monotonic() - started, 2),
    }
