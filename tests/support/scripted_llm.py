"""A scripted OpenAI-compatible model for pipeline tests, at the HTTP layer.

Each request is matched to its agent by the JSON-schema name it asks for, and the
agent's typed input is read back from the `<input>` block its prompt quotes (one
generic decoder, `Agent.inputs_from_prompt`). Handlers are functions of that typed
input. Tests override single agents to inject failures (a status code, invalid
JSON) or to script specific outputs, and read `calls` to count exactly which
requests the "model" received.

The same object serves two ways: as a respx side effect for workers running in
the test process, and as a loopback HTTP server (`serve()`) for worker
processes that the test starts and kills.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from pydantic import BaseModel

from fte.agents import all_agents, analyst, fact_checker, planner, reviewer, source_finder, writer
from fte.text import sentences
from tests.support.openai_responses import completion_body

PLANNER = planner.AGENT.name
QUERIES = source_finder.QUERIES.name
RELEVANCE = source_finder.RELEVANCE.name
ANALYST = analyst.AGENT.name
FACT_CHECK = fact_checker.AGENT.name
WRITER = writer.AGENT.name
REVIEWER = reviewer.AGENT.name
ALL_AGENTS = (PLANNER, QUERIES, RELEVANCE, ANALYST, FACT_CHECK, WRITER, REVIEWER)
_BY_SCHEMA = {agent.output_model.__name__: agent for agent in all_agents().values()}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: `body` is the JSON document (for 200: the model's output object)."""

    status: int
    body: Any
    raw_content: str | None = None  # for 200s whose message content is not valid JSON
    headers: dict[str, str] | None = None


Handler = Callable[[Any], Any]  # typed agent input -> output (model or dict), or a Reply
# (agent, prompt, content) -> the (prompt, completion) tokens the reply reports
UsageFn = Callable[[str, str, str], tuple[int, int]]


def words_used(agent: str, prompt: str, content: str) -> tuple[int, int]:
    """Tokens as words: the prompt's and the reply's."""
    return len(prompt.split()), len(content.split())


def first_sentence(text: str) -> str:
    found = sentences(text)
    return found[0].raw if found else text.strip()


def default_planner(sub_questions: list[str]) -> Handler:
    return lambda inputs: {"sub_questions": sub_questions, "rationale": "scripted plan"}


def default_queries(inputs: source_finder.QueriesInput) -> Any:
    return {"queries": [inputs.sub_question]}


def default_relevance(inputs: source_finder.RelevanceInput) -> Any:
    return {
        "relevant_passage_ids": [c.passage_id for c in inputs.candidates],
        "notes": "all candidates kept",
    }


def default_analyst(inputs: analyst.AnalystInput) -> Any:
    """One claim per source: its first sentence, citing that source."""
    return {
        "claims": [
            {"text": first_sentence(s.text), "source_ids": [s.id], "sub_question_id": None}
            for s in inputs.sources
        ],
        "summary": "scripted analysis",
    }


def default_fact_check(inputs: fact_checker.FactCheckInput) -> Any:
    """Supported, quoting the claim itself when a cited passage contains it verbatim."""
    verdicts = []
    for claim in inputs.claims:
        holder = next((s.id for s in claim.cited_sources if claim.text in s.text), None)
        verdicts.append(
            {
                "claim_id": claim.id,
                "verdict": "supported" if holder else "unsupported",
                "evidence": claim.text if holder else "",
                "evidence_source_id": holder,
            }
        )
    return {"verdicts": verdicts}


def default_reviewer(inputs: reviewer.ReviewInput) -> Any:
    """The gaps the verdicts establish (the offline twin's answer), no follow-ups."""
    return reviewer.offline(inputs)


def default_writer(inputs: writer.WriterInput) -> Any:
    paragraphs = [
        {
            # The claim's own words: the writer's rules drop sentences its claims do not carry.
            "text": checked.claim.text,
            "claim_ids": [checked.claim.id],
            "source_ids": checked.claim.source_ids,
        }
        for checked in inputs.claims
        if checked.verdict == "supported"
    ]
    return {
        "title": "Scripted report",
        "summary": "A report assembled from the supported claims.",
        "sections": [{"heading": "Findings", "paragraphs": paragraphs}],
    }


class ScriptedLLM:
    def __init__(self, sub_questions: list[str], **overrides: Handler | list[Any]) -> None:
        """`overrides` maps an agent name to a handler, or to a list of replies
        or handlers consumed one per call (the last one repeats). `usage` says what
        each reply reports it cost: words by default; budget tests fix it per call."""
        self.handlers: dict[str, Handler | list[Any]] = {
            PLANNER: default_planner(sub_questions),
            QUERIES: default_queries,
            RELEVANCE: default_relevance,
            ANALYST: default_analyst,
            FACT_CHECK: default_fact_check,
            WRITER: default_writer,
            REVIEWER: default_reviewer,
        }
        self.handlers.update(overrides)
        self.usage: UsageFn = words_used
        self.calls: Counter[str] = Counter()
        self.statuses: dict[str, list[int]] = {agent: [] for agent in ALL_AGENTS}
        self.prompts: dict[str, list[str]] = {agent: [] for agent in ALL_AGENTS}
        self.gates: dict[str, tuple[threading.Event, int]] = {}
        self.arrived: dict[str, threading.Event] = {
            agent: threading.Event() for agent in ALL_AGENTS
        }
        self._lock = threading.Lock()

    def hold(self, agent: str, *, from_call: int = 1) -> threading.Event:
        """Block `agent`'s requests, from its `from_call`-th on, until the returned event is
        set (to kill a worker mid-call); `arrived[agent]` is set when a held one arrives."""
        gate = threading.Event()
        self.gates[agent] = (gate, from_call)
        return gate

    # -- the model -------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        agent = _BY_SCHEMA[body["response_format"]["json_schema"]["name"]]
        schema = agent.name
        prompt = body["messages"][1]["content"]
        inputs = agent.inputs_from_prompt(prompt)
        with self._lock:
            self.calls[schema] += 1
            self.prompts[schema].append(prompt)
            call_number = self.calls[schema]
        held = self.gates.get(schema)
        if held is None or call_number >= held[1]:
            self.arrived[schema].set()
        if held is not None and call_number >= held[1]:
            held[0].wait(timeout=120)
        handler = self.handlers[schema]
        if isinstance(handler, list):
            result = handler[min(call_number, len(handler)) - 1]
            if callable(result):
                result = result(inputs)
        else:
            result = handler(inputs)
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json")
        reply = result if isinstance(result, Reply) else Reply(200, result)
        with self._lock:
            self.statuses[schema].append(reply.status)
        if reply.status != 200:
            return reply.status, reply.body, reply.headers or {}
        content = reply.raw_content if reply.raw_content is not None else json.dumps(reply.body)
        prompt_tokens, completion_tokens = self.usage(schema, prompt, content)
        return (
            200,
            completion_body(
                content,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                model=body.get("model", "scripted"),
                completion_id=f"chatcmpl-{schema}-{call_number}",
            ),
            {},
        )

    # -- respx side effect -----------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        status, body, headers = self.answer(json.loads(request.content))
        return httpx.Response(status, json=body, headers=headers)

    # -- loopback server ---------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the model on 127.0.0.1; yields the base URL for OPENAI_BASE_URL."""
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                status, body, headers = model.answer(json.loads(self.rfile.read(length)))
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker that asked was killed meanwhile

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/v1"
        finally:
            for gate, _ in self.gates.values():
                gate.set()
            server.shutdown()
            server.server_close()
