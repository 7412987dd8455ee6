"""Spans for every LLM call reach an OTLP collector, in the workflow's trace.

The collector is a real OTLP/gRPC endpoint in the test process (opentelemetry-proto's
TraceService). The sidecar is configured to trace to it (Dapr Configuration `tracing.otel`,
written by `fte.backends`) and `fte worker` runs as its own process with
OTEL_EXPORTER_OTLP_ENDPOINT pointing at it, as an operator would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from fte.backends import render
from fte.client import ResearchClient
from fte.contracts import ModelEndpoint, RunConfig
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from tests.pipeline.conftest import CORPUS, SUB_QUESTIONS, TEST_KEY
from tests.support.processes import LoggedProcess, wait_for
from tests.support.scripted_llm import ALL_AGENTS, ScriptedLLM

pytestmark = pytest.mark.engine


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    def Export(  # noqa: N802 - the OTLP service's method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        Span(
                            service=str(resource.get("service.name", "")),
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self._lock:
            self.spans.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()

    def llm_spans(self, task_id: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.attributes.get("fte.task_id") == task_id]


@pytest.fixture
def collector() -> Iterator[tuple[Collector, int]]:
    servicer = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


def test_llm_calls_are_genai_spans_in_the_workflow_trace(
    collector: tuple[Collector, int], tmp_path: Path
) -> None:
    spans, port = collector
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name, text in CORPUS.items():
        (corpus / name).write_text(text)
    data_dir = tmp_path / "data"
    backends = render(
        data_dir / "components",
        state_url=None,
        pubsub_url=None,
        tracing_endpoint=f"http://127.0.0.1:{port}",
    )
    llm = ScriptedLLM(SUB_QUESTIONS)
    stack = EmbeddedStack(
        data_dir=data_dir, components_dir=backends.components_dir, binaries=find_binaries()
    )
    with stack as endpoint, llm.serve() as llm_url:
        worker = _worker(endpoint, llm_url, port, tmp_path / "worker.log")
        try:
            with ResearchClient(endpoint) as research:
                task_id = research.start(
                    RunConfig(
                        query="How do durable workflows stay reliable?",
                        corpus_dir=str(corpus),
                        endpoint=ModelEndpoint(base_url=llm_url),
                    ),
                    "traced-run",
                )
                snap = research.wait(task_id, timeout_s=180)
                assert snap.end_state == "completed", (snap.failure, snap.progress)
                usage = research.report(task_id)["usage_total"]
        finally:
            worker.stop()  # SIGTERM: the worker flushes its spans on the way out
        wait_for(lambda: len(spans.llm_spans(task_id)) >= sum(llm.calls.values()), "the spans")

    llm_spans = spans.llm_spans(task_id)
    # One span per model request, named and attributed per the GenAI conventions.
    assert len(llm_spans) == sum(llm.calls.values()) == usage["calls"]
    assert {s.attributes["gen_ai.agent.name"] for s in llm_spans} == {
        agent for agent in ALL_AGENTS if llm.calls[agent]
    }
    for span in llm_spans:
        assert span.service == "fte-worker"
        assert span.name == f"chat {span.attributes['gen_ai.request.model']}"
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["fte.llm.http_attempts"] == 1
        assert span.attributes["fte.workflow_id"].startswith(task_id)
    # Token counts are what the model server reported, and add up to the report's.
    assert (
        sum(s.attributes["gen_ai.usage.input_tokens"] for s in llm_spans) == usage["prompt_tokens"]
    )
    assert (
        sum(s.attributes["gen_ai.usage.output_tokens"] for s in llm_spans)
        == usage["completion_tokens"]
    )
    # Parented: each LLM span sits under the SDK's activity span, in a trace the sidecar
    # started for the workflow (its own spans are in the same trace).
    by_id = {s.span_id: s for s in spans.spans}
    sidecar_traces = {s.trace_id for s in spans.spans if s.service != "fte-worker"}
    for span in llm_spans:
        parent = by_id.get(span.parent_id)
        assert parent is not None and parent.name.startswith("activity: "), span
        assert span.trace_id in sidecar_traces, span


def _worker(endpoint: RuntimeEndpoint, llm_url: str, otlp_port: int, log: Path) -> LoggedProcess:
    env = {
        **os.environ,
        "DAPR_GRPC_PORT": str(endpoint.grpc_port),
        "DAPR_HTTP_PORT": str(endpoint.http_port),
        "DAPR_API_TOKEN": endpoint.api_token or "",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": TEST_KEY,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    env.pop("DAPR_GRPC_ENDPOINT", None)
    process = LoggedProcess([sys.executable, "-m", "fte", "worker"], log, env=env)
    wait_for(lambda: process.alive() and "serving research runs" in process.log(), "the worker")
    return process


def test_without_an_exporter_the_sdk_is_never_loaded() -> None:
    """Tracing is optional: no endpoint, no OpenTelemetry SDK, no exporter, no wrapper."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    probe = (
        "import sys; from fte import tracing, wiring, activities; flush = tracing.configure(); "
        "flush(); from fte.llm import FunctionModel; "
        "m = FunctionModel(lambda r: None, name='x'); "
        "assert tracing.traced(m, task_id='t', workflow_id='w', activity_task=1) is m; "
        "print(sorted(n for n in sys.modules if n.startswith('opentelemetry.sdk')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
