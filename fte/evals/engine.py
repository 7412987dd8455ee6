"""Research runs for the evaluation suites, on the real Dapr engine.

One private embedded stack (placement, scheduler, daprd) on a fresh data directory, and one
research worker built by the production composition root (`fte.wiring.research_worker`).
The worker's model server is reached through `LLMClient` over an `httpx.Client` whose
transport is a `Switchboard`: each case puts its own model server (a cassette, an
adversary, a fault script) behind it for the length of its run. Cases run one after
another, so no case can answer another's requests.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from fte import artifacts
from fte.client import ResearchClient, Snapshot
from fte.contracts import DEFAULT_DEPTH, AgentModels, ModelEndpoint, RunConfig
from fte.dapr_stack import EmbeddedStack
from fte.evals.transports import Switchboard
from fte.llm import LLMConfig
from fte.wiring import research_worker

# The model server every in-process transport stands in for. `.invalid` never resolves, so
# a request that escaped the transport could not reach anything either.
EVAL_BASE_URL = "http://model.fte-eval.invalid/v1"
EVAL_MODEL = "fte-eval-model"
RUN_TIMEOUT_S = 180.0
# HTTP-level retries as in production, but with short backoff: the failure suite's scripts
# exercise the same retry rules in less time.
EVAL_LLM_CONFIG = LLMConfig(
    base_url=EVAL_BASE_URL,
    api_key=SecretStr("fte-eval-no-key"),
    backoff_base_s=0.01,
    max_retry_after_s=2,
)


@dataclass(frozen=True)
class RunResult:
    task_id: str
    snapshot: Snapshot
    report: dict[str, Any] | None
    artifacts_left: list[str]

    @property
    def status(self) -> str:
        return self.snapshot.end_state or self.snapshot.runtime_status.lower()

    @property
    def reason(self) -> str:
        progress = self.snapshot.progress
        return (progress.reason if progress else None) or self.snapshot.failure or ""


class EvalEngine:
    """The stack, a worker serving `llm_config`'s model server, and a client."""

    def __init__(
        self,
        work_dir: Path,
        *,
        llm_config: LLMConfig = EVAL_LLM_CONFIG,
        endpoint: ModelEndpoint | None = None,
    ) -> None:
        self._work_dir = work_dir
        self._llm_config = llm_config
        self.endpoint = endpoint or ModelEndpoint(base_url=llm_config.base_url)
        self.switchboard = Switchboard()
        self._stack = contextlib.ExitStack()
        self._client: ResearchClient | None = None

    def __enter__(self) -> EvalEngine:
        try:
            stack = EmbeddedStack(data_dir=self._work_dir / "dapr")
            endpoint = self._stack.enter_context(stack)
            http = self._stack.enter_context(httpx.Client(transport=self.switchboard))
            self._stack.enter_context(
                research_worker(endpoint, llm_config=self._llm_config, http_client=http)
            )
            self._client = self._stack.enter_context(ResearchClient(endpoint))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def client(self) -> ResearchClient:
        if self._client is None:
            raise RuntimeError("EvalEngine used outside its `with` block")
        return self._client

    def config(
        self,
        query: str,
        corpus: Path,
        models: AgentModels | None = None,
        *,
        depth: int = DEFAULT_DEPTH,
    ) -> RunConfig:
        """A run of `query` on `corpus` whose every agent calls this engine's model server,
        with as many gap-filling rounds as a user's run has unless told otherwise."""
        return RunConfig(
            query=query,
            corpus_dir=str(corpus),
            models=models or AgentModels(**dict.fromkeys(AgentModels.model_fields, EVAL_MODEL)),
            endpoint=self.endpoint,
            depth=depth,
        )

    def run(self, config: RunConfig, transport: httpx.BaseTransport, *, task_id: str) -> RunResult:
        """Run `config` to its end with `transport` as the model server."""
        task_id = re.sub(r"[^A-Za-z0-9_-]", "-", task_id)[:64]
        with self.switchboard.serving(transport):
            self.client.start(config, task_id)
            snapshot = self.client.wait(task_id, timeout_s=RUN_TIMEOUT_S)
        report = self.client.report(task_id) if snapshot.end_state == "completed" else None
        return RunResult(task_id, snapshot, report, self._artifacts(task_id, snapshot))

    def _artifacts(self, task_id: str, snapshot: Snapshot) -> list[str]:
        """The run's artifacts still in the state store (none after compensation)."""
        progress = snapshot.progress
        sub_questions = [q.id for q in progress.sub_questions] if progress else []
        names = artifacts.run_artifact_names(sub_questions)
        if progress is not None:
            names += artifacts.rounds_artifact_names(r.model_dump() for r in progress.rounds)
        return [name for name in names if self.client.store.get(task_id, name) is not None]
