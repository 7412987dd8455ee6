"""A scripted OpenAI-compatible model for pipeline tests, at the HTTP layer.

Each agent is recognised by the JSON-schema name its request asks for, and
answered by a handler that reads the rendered prompt (source, passage and claim
blocks) the way a model would. Tests override single agents to inject failures
(a status code, invalid JSON) or to script specific outputs, and read `calls`
to count exactly which requests the "model" received.

The same object serves two ways: as a respx side effect for workers running in
the test process, and as a loopback HTTP server (`serve()`) for worker
processes that the test starts and kills.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

PLANNER = "PlannerOutput"
QUERIES = "SearchQueries"
RELEVANCE = "RelevanceJudgement"
ANALYST = "AnalystOutput"
FACT_CHECK = "FactCheckOutput"
WRITER = "WriterOutput"
ALL_AGENTS = (PLANNER, QUERIES, RELEVANCE, ANALYST, FACT_CHECK, WRITER)


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: `body` is the JSON document (for 200: the model's output object)."""

    status: int
    body: Any
    raw_content: str | None = None  # for 200s whose message content is not valid JSON
    headers: dict[str, str] | None = None


Handler = Callable[[str], Any]  # user prompt -> output object, or a Reply

_SOURCE = re.compile(
    r'<source id="(?P<id>[^"]+)">\ntitle: [^\n]*\nlocation: [^\n]*\n(?P<text>.*?)\n</source>', re.S
)
_PASSAGE = re.compile(r'<passage passage_id="(?P<id>[^"]+)">')
_CHECK_CLAIM = re.compile(r'<claim id="(?P<id>[^"]+)">\n(?P<text>.*?)\n</claim>', re.S)
_WRITER_CLAIM = re.compile(
    r'<claim id="(?P<id>[^"]+)" verdict="(?P<verdict>[^"]+)" sources="(?P<sources>[^"]*)"[^>]*>'
)
_QUESTION = re.compile(r"<question>\n(?P<text>.*?)\n</question>", re.S)


def first_sentence(text: str) -> str:
    body = " ".join(line for line in text.splitlines() if line and not line.startswith("#"))
    return re.split(r"(?<=[.!?])\s", body.strip(), maxsplit=1)[0]


def default_planner(sub_questions: list[str]) -> Handler:
    return lambda prompt: {"sub_questions": sub_questions, "rationale": "scripted plan"}


def default_queries(prompt: str) -> Any:
    match = _QUESTION.search(prompt)
    return {"queries": [match["text"] if match else "workflow"]}


def default_relevance(prompt: str) -> Any:
    return {"relevant_passage_ids": _PASSAGE.findall(prompt), "notes": "all candidates kept"}


def default_analyst(prompt: str) -> Any:
    """One claim per source: its first sentence, citing that source."""
    return {
        "claims": [
            {"text": first_sentence(m["text"]), "source_ids": [m["id"]], "sub_question_id": None}
            for m in _SOURCE.finditer(prompt)
        ],
        "summary": "scripted analysis",
    }


def default_fact_check(prompt: str) -> Any:
    """Supported, quoting the claim itself when a cited passage contains it verbatim."""
    verdicts = []
    blocks = re.split(r"(?=<claim id=)", prompt)
    for block in blocks:
        claim = _CHECK_CLAIM.search(block)
        if claim is None:
            continue
        holder = next(
            (s["id"] for s in _SOURCE.finditer(block) if claim["text"] in s["text"]), None
        )
        verdicts.append(
            {
                "claim_id": claim["id"],
                "verdict": "supported" if holder else "unsupported",
                "evidence": claim["text"] if holder else "",
                "evidence_source_id": holder,
            }
        )
    return {"verdicts": verdicts}


def default_writer(prompt: str) -> Any:
    paragraphs = [
        {
            "text": f"Finding {m['id']}.",
            "claim_ids": [m["id"]],
            "source_ids": [s.strip() for s in m["sources"].split(",") if s.strip()],
        }
        for m in _WRITER_CLAIM.finditer(prompt)
        if m["verdict"] == "supported"
    ]
    return {
        "title": "Scripted report",
        "summary": "A report assembled from the supported claims.",
        "sections": [{"heading": "Findings", "paragraphs": paragraphs}],
    }


class ScriptedLLM:
    def __init__(self, sub_questions: list[str], **overrides: Handler | list[Any]) -> None:
        """`overrides` maps an agent (schema name) to a handler, or to a list of replies
        or handlers consumed one per call (the last one repeats)."""
        self.handlers: dict[str, Handler | list[Any]] = {
            PLANNER: default_planner(sub_questions),
            QUERIES: default_queries,
            RELEVANCE: default_relevance,
            ANALYST: default_analyst,
            FACT_CHECK: default_fact_check,
            WRITER: default_writer,
        }
        self.handlers.update(overrides)
        self.calls: Counter[str] = Counter()
        self.statuses: dict[str, list[int]] = {agent: [] for agent in ALL_AGENTS}
        self.prompts: dict[str, list[str]] = {agent: [] for agent in ALL_AGENTS}
        self.gates: dict[str, threading.Event] = {}
        self.arrived: dict[str, threading.Event] = {
            agent: threading.Event() for agent in ALL_AGENTS
        }
        self._lock = threading.Lock()

    def hold(self, agent: str) -> threading.Event:
        """Block `agent`'s requests until the returned event is set (to kill a worker mid-call)."""
        gate = threading.Event()
        self.gates[agent] = gate
        return gate

    # -- the model -------------------------------------------------------------

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        schema = body["response_format"]["json_schema"]["name"]
        prompt = body["messages"][1]["content"]
        with self._lock:
            self.calls[schema] += 1
            self.prompts[schema].append(prompt)
            call_number = self.calls[schema]
        self.arrived[schema].set()
        gate = self.gates.get(schema)
        if gate is not None:
            gate.wait(timeout=120)
        handler = self.handlers[schema]
        if isinstance(handler, list):
            result = handler[min(call_number, len(handler)) - 1]
            if callable(result):
                result = result(prompt)
        else:
            result = handler(prompt)
        reply = result if isinstance(result, Reply) else Reply(200, result)
        with self._lock:
            self.statuses[schema].append(reply.status)
        if reply.status != 200:
            return reply.status, reply.body, reply.headers or {}
        content = reply.raw_content if reply.raw_content is not None else json.dumps(reply.body)
        words = len(prompt.split())
        return (
            200,
            {
                "id": f"chatcmpl-{schema}-{call_number}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "scripted"),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": {
                    "prompt_tokens": words,
                    "completion_tokens": len(content.split()),
                    "total_tokens": words + len(content.split()),
                },
            },
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
            for gate in self.gates.values():
                gate.set()
            server.shutdown()
            server.server_close()
