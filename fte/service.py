"""Composition root: wire activities to their dependencies and serve the workflows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dapr.ext.workflow as wf
import httpx
from dapr.ext.workflow.logger import LoggerOptions

from fte import activities, workflows
from fte.activities import ActivityDeps, Notifier, cached_corpus
from fte.artifacts import ArtifactStore, close_dapr_client, dapr_client
from fte.llm import LLMClient, LLMConfig
from fte.runtime import RuntimeEndpoint
from fte.worker import WorkflowWorker


def workflow_client(endpoint: RuntimeEndpoint) -> wf.DaprWorkflowClient:
    port = str(endpoint.grpc_port) if endpoint.grpc_port is not None else None
    # The SDK logs every miss ("instance not found") and read race at WARNING/ERROR
    # on stderr before raising; callers handle both, so only its criticals show.
    return wf.DaprWorkflowClient(
        host=endpoint.host, port=port, logger_options=LoggerOptions(log_level="CRITICAL")
    )


def describe_llm(config: LLMConfig, *, offline: bool) -> str:
    if offline:
        return "the built-in offline extractive model (no LLM configured)"
    return f"OpenAI-compatible server {config.base_url or 'https://api.openai.com/v1'}"


@contextlib.contextmanager
def research_worker(
    endpoint: RuntimeEndpoint,
    *,
    llm_config: LLMConfig,
    http_client: httpx.Client | None = None,
    offline: bool = False,
    max_concurrent_activities: int | None = None,
) -> Iterator[WorkflowWorker]:
    """Serve the research workflows and activities on `endpoint` until the block exits."""
    owned_http = http_client is None
    # An explicit httpx client (not the SDK's default) keeps one connection pool per
    # worker and is what HTTP-level mocks and the offline transport plug into.
    http = http_client or httpx.Client(timeout=llm_config.timeout_s)
    dapr = dapr_client(endpoint)
    wf_client = workflow_client(endpoint)
    llm = LLMClient(llm_config, http_client=http)
    activities.configure(
        ActivityDeps(
            llm=llm,
            store=ArtifactStore(dapr),
            notifier=Notifier(dapr),
            corpus=cached_corpus,
            workflow_client=wf_client,
            llm_endpoint=describe_llm(llm_config, offline=offline),
        )
    )
    try:
        with WorkflowWorker(
            host=endpoint.host,
            port=endpoint.grpc_port,
            register=workflows.register,
            max_concurrent_activities=max_concurrent_activities,
        ) as worker:
            yield worker
    finally:
        llm.close()
        wf_client.close()
        close_dapr_client(dapr)
        if owned_http:
            http.close()
