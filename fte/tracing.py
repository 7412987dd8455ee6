"""OpenTelemetry spans for LLM calls, exported over OTLP when an endpoint is configured.

Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
then the worker installs the OpenTelemetry SDK with a batching OTLP/gRPC exporter, and each
model call becomes a span following the GenAI semantic conventions (`chat <model>`, with
`gen_ai.agent.name`, `gen_ai.request.model`, `gen_ai.response.model`,
`gen_ai.usage.input_tokens` / `output_tokens`) plus the run's `fte.task_id`, the workflow,
the activity's task number and the HTTP attempts within the call. Without an endpoint only
the OpenTelemetry API's no-op tracer runs: no SDK, no exporter, no thread.

Parenting: the Dapr SDK's worker opens an `activity: <name>` span around every activity,
continuing the trace context the sidecar sends with the work item (the workflow's trace when
Dapr's own tracing is on, see `fte.backends`); the LLM span is opened inside it, so a run's
model calls hang under its workflow in one trace.

The engine's retry number is not visible to an activity (the SDK passes none); a retried
call shows as a second span with the same task ID, agent and workflow.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import trace
from pydantic import BaseModel

from fte.llm import FunctionModel, LLMResult, Model, ModelRequest

T = TypeVar("T", bound=BaseModel)

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_lock = threading.Lock()
_shutdown: Callable[[], None] | None = None


def enabled(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in _ENDPOINT_VARIABLES)


def configure(service_name: str = "fte-worker") -> Callable[[], None]:
    """Install the exporter if an endpoint is configured; returns what flushes it on exit.

    Once per process: OpenTelemetry's global tracer provider can be set only once.
    """
    global _shutdown
    if not enabled():
        return lambda: None
    with _lock:
        if _shutdown is None:
            # Imported only here: a worker without tracing never loads the SDK.
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import SERVICE_NAME, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            resource = Resource.create(
                {SERVICE_NAME: os.environ.get("OTEL_SERVICE_NAME", service_name)}
            )
            provider = TracerProvider(resource=resource)
            # The exporter reads the endpoint, headers and TLS settings from OTEL_EXPORTER_*.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            trace.set_tracer_provider(provider)
            _shutdown = provider.shutdown
    return _flush


def _flush() -> None:
    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is not None:
        force_flush()


def shutdown() -> None:
    """At process exit: send what is buffered and stop the exporter."""
    if _shutdown is not None:
        _shutdown()


class TracedModel:
    """A `Model` whose every call is a GenAI client span."""

    def __init__(self, inner: Model, *, task_id: str, workflow_id: str, activity_task: int) -> None:
        self._inner = inner
        self._attributes: dict[str, Any] = {
            "fte.task_id": task_id,
            "fte.workflow_id": workflow_id,
            "fte.activity.task_number": activity_task,
        }
        self._provider = "fte.offline" if isinstance(inner, FunctionModel) else "openai"

    def complete(self, request: ModelRequest[T]) -> LLMResult[T]:
        tracer = trace.get_tracer("fte.llm")
        with tracer.start_as_current_span(
            f"chat {request.model}",
            kind=trace.SpanKind.CLIENT,
            attributes={
                **self._attributes,
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": self._provider,
                "gen_ai.agent.name": request.agent,
                "gen_ai.request.model": request.model,
                "gen_ai.output.type": "json",
            },
        ) as span:
            try:
                result = self._inner.complete(request)
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__name__)
                raise  # the span records the exception and an error status on the way out
            span.set_attributes(
                {
                    "gen_ai.response.model": result.model,
                    "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": result.usage.completion_tokens,
                    "fte.llm.http_attempts": result.http_attempts,
                }
            )
            return result

    def close(self) -> None:
        self._inner.close()


def traced(inner: Model, *, task_id: str, workflow_id: str, activity_task: int) -> Model:
    """`inner` with spans when tracing is on; `inner` itself otherwise (no wrapper at all)."""
    if _shutdown is None:
        return inner
    return TracedModel(inner, task_id=task_id, workflow_id=workflow_id, activity_task=activity_task)
