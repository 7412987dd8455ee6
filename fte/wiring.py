"""Composition root: wire activities to their dependencies and serve the workflows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from fte import activities, workflows
from fte.activities import ActivityDeps, Notifier, cached_corpus
from fte.artifacts import ArtifactStore
from fte.dapr_clients import close_dapr_client, dapr_client, workflow_client
from fte.dapr_stack import RuntimeEndpoint
from fte.llm import LLMClient, LLMConfig
from fte.worker import WorkflowWorker


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
