"""Composition root: register workflows and activities, wire activities to their dependencies."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import httpx

from fte import activities, coordinator, names, tracing
from fte.activities import ActivityDeps, Notifier
from fte.agents import offline_model
from fte.artifacts import ArtifactStore
from fte.coordinator import CoordinatorFn
from fte.coordinator.stages import SPECIALISTS
from fte.dapr_clients import close_dapr_client, dapr_client, workflow_client
from fte.dapr_stack import RuntimeEndpoint
from fte.llm import LLMClient, LLMConfig, Model, ModelRouter
from fte.schedule import activities as schedule_activities
from fte.schedule import workflow as schedule_workflow
from fte.sources import cached_corpus
from fte.specialists import (
    lean_source_finder_workflow,
    proposing_source_finder_workflow,
    single_activity_source_finder_workflow,
    source_finder_workflow,
    specialist_workflow,
)
from fte.worker import DEFAULT_ACTIVITY_THREADS, Registrar, Registry, WorkflowWorker


def register(
    registry: Registry,
    *,
    coordinator_versions: Mapping[str, CoordinatorFn] = coordinator.VERSIONS,
    latest: str = coordinator.LATEST,
) -> None:
    """Every workflow and activity of a research run, under its wire name (`fte.names`)."""
    for version, workflow in coordinator_versions.items():
        registry.workflow(names.COORDINATOR, workflow, version=version, latest=version == latest)
    registry.workflow(names.SOURCE_FINDER, source_finder_workflow)
    registry.workflow(names.SOURCE_FINDER_LEAN, lean_source_finder_workflow)
    registry.workflow(names.SOURCE_FINDER_PROPOSING, proposing_source_finder_workflow)
    registry.workflow(names.SOURCE_FINDER_SINGLE, single_activity_source_finder_workflow)
    for agent in SPECIALISTS:
        registry.workflow(names.specialist_workflow(agent.name), specialist_workflow)
    for name, activity in activities.activities().items():
        registry.activity(name, activity)
    for version, loop in schedule_workflow.VERSIONS.items():
        registry.workflow(
            names.SCHEDULE, loop, version=version, latest=version == schedule_workflow.LATEST
        )
    registry.activity(names.SCHEDULE_FIRE, schedule_activities.fire)


@contextlib.contextmanager
def research_worker(
    endpoint: RuntimeEndpoint,
    *,
    llm_config: LLMConfig,
    http_client: httpx.Client | None = None,
    offline: bool = False,
    max_concurrent_activities: int | None = None,
    registrar: Registrar = register,
) -> Iterator[WorkflowWorker]:
    """Serve the research workflows and activities on `endpoint` until the block exits.

    Every run says which model server it uses (`RunConfig.endpoint`); this worker serves
    the offline model to any run, and `llm_config`'s server (unless `offline`) to runs
    that name it.
    """
    server: Model | None = None
    if not offline:
        # Without an injected client (tests inject theirs) LLMClient makes and closes its
        # own, set up for its deadlines (fte.http_limits).
        server = LLMClient(llm_config, http_client=http_client)
    models = ModelRouter(offline=offline_model(), server=server, server_url=llm_config.base_url)
    # OTLP spans per LLM call, only when an exporter endpoint is configured (fte.tracing).
    flush_spans = tracing.configure()
    dapr = dapr_client(endpoint)
    wf_client = workflow_client(endpoint)
    # One set of dependencies per process; a worker started inside another's lifetime
    # (tests, an upgrade in place) hands them back when it stops.
    previous = activities.configure(
        ActivityDeps(
            models=models,
            store=ArtifactStore(dapr),
            notifier=Notifier(dapr),
            corpus=cached_corpus,
            workflow_client=wf_client,
        )
    )
    try:
        with WorkflowWorker.on(
            endpoint,
            registrar,
            max_concurrent_activities=max_concurrent_activities,
            # Every model call in flight holds a thread while it waits, and storage and
            # search activities must still find one free.
            threads=max(DEFAULT_ACTIVITY_THREADS, 2 * llm_config.max_concurrent_requests),
        ) as worker:
            yield worker
    finally:
        activities.configure(previous)
        models.close()
        wf_client.close()
        close_dapr_client(dapr)
        flush_spans()
