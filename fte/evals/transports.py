"""In-process model servers for the evaluation runs, as httpx transports.

The research worker talks to its model server through `LLMClient` over an injected
`httpx.Client`; every suite that runs the real pipeline plugs in here, at the HTTP layer,
so the client's retries, repair call, validation and error mapping are what gets evaluated:

- `ModelServer` serves any `fte.llm.Model` (the offline model, an adversarial
  `FunctionModel`) as an OpenAI-compatible chat-completions endpoint. Each request's agent
  is told by the JSON-schema name it asks for, and its typed input is read back from the
  `<input>` block its prompt quotes (`Agent.inputs_from_prompt`), so the model is a plain
  function of typed inputs.
- `FaultInjector` puts a scripted fault sequence (status codes, timeouts, invalid or
  schema-invalid output) in front of another transport, per agent, and counts requests.
- `Switchboard` is the one transport the worker holds for its lifetime; each evaluation case
  puts its own transport behind it for the duration of its run.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import Field

from fte.agents import AnyAgent, all_agents
from fte.contracts import Contract
from fte.llm import Model, ModelRequest

CHAT_PATH = "/chat/completions"


def agent_of(body: Mapping[str, Any]) -> AnyAgent | None:
    """The agent whose output schema a chat-completion request asks for, if it is one of ours."""
    schema = body.get("response_format", {}).get("json_schema", {}).get("name")
    by_schema = {agent.output_model.__name__: agent for agent in all_agents().values()}
    return by_schema.get(schema)


def schema_name(body: Mapping[str, Any]) -> str:
    return str(body.get("response_format", {}).get("json_schema", {}).get("name", "?"))


def request_label(request: httpx.Request) -> str:
    """The agent a request is for (its schema name when it is not an agent's), for counting."""
    try:
        body = json.loads(request.content)
    except ValueError:
        return "?"
    agent = agent_of(body)
    return agent.name if agent else schema_name(body)


def completion(
    content: str,
    *,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    completion_id: str = "chatcmpl-fte-eval",
) -> dict[str, Any]:
    """A chat-completion body; fixed ID and time so that identical answers are identical bytes.

    The one builder of OpenAI chat-completion bodies: the eval transports and the test
    doubles both use it.
    """
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": content},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_response(
    status: int, message: str, *, type: str, code: str | None = None
) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"message": message, "type": type, "code": code, "param": None}}
    )


class ModelServer(httpx.BaseTransport):
    """A `Model` behind an OpenAI-compatible chat-completions endpoint, in process."""

    def __init__(self, model: Model) -> None:
        self.model = model

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        agent = agent_of(body)
        if agent is None:
            return error_response(
                400, f"no agent answers the schema {schema_name(body)!r}", type="invalid_request"
            )
        system, user = body["messages"][0]["content"], body["messages"][1]["content"]
        result = self.model.complete(
            ModelRequest(
                agent=agent.name,
                model=body["model"],
                system=system,
                user=user,
                output_model=agent.output_model,
                inputs=agent.inputs_from_prompt(user),
            )
        )
        return httpx.Response(
            200,
            json=completion(
                result.output.model_dump_json(),
                model=body["model"],
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
            ),
        )


# -- scripted faults ---------------------------------------------------------------------


class Fault(Contract):
    """One scripted answer to one request of an agent."""

    kind: Literal["ok", "status", "timeout", "invalid_json", "schema_invalid"] = Field(
        description="ok: pass the request on to the model; status: answer with an HTTP "
        "error; timeout: the read times out; invalid_json / schema_invalid: a 200 whose "
        "content is not JSON / is JSON outside the agent's schema."
    )
    status: int = 200
    headers: dict[str, str] = Field(default_factory=dict)
    error_code: str | None = None


class FaultInjector(httpx.BaseTransport):
    """Answers each agent's n-th request with its script's n-th fault, then passes through.

    `repeat_last` keeps the last scripted fault for every later request (a server that
    stays down). `requests` counts every request per agent, faults included.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        script: Mapping[str, Sequence[Fault]],
        *,
        repeat_last: bool = False,
    ) -> None:
        self._inner = inner
        self._script = {agent: list(faults) for agent, faults in script.items()}
        self._repeat_last = repeat_last
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        agent = request_label(request)
        with self._lock:
            self.requests[agent] += 1
            number = self.requests[agent]
        faults = self._script.get(agent, [])
        if number <= len(faults):
            fault = faults[number - 1]
        elif faults and self._repeat_last:
            fault = faults[-1]
        else:
            fault = Fault(kind="ok")
        return self._answer(fault, request)

    def _answer(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("scripted timeout", request=request)
        if fault.kind == "status":
            response = error_response(
                fault.status,
                f"scripted HTTP {fault.status}",
                type="server_error" if fault.status >= 500 else "invalid_request_error",
                code=fault.error_code,
            )
            response.headers.update(fault.headers)
            return response
        if fault.kind in ("invalid_json", "schema_invalid"):
            content = "Sure! Here is the JSON: {" if fault.kind == "invalid_json" else '{"x": 1}'
            model = json.loads(request.content).get("model", "?")
            return httpx.Response(
                200, json=completion(content, model=model, prompt_tokens=1, completion_tokens=1)
            )
        return self._inner.handle_request(request)


# -- switching per case ------------------------------------------------------------------


class Switchboard(httpx.BaseTransport):
    """The worker's transport; each case puts its own behind it while its run lasts."""

    def __init__(self) -> None:
        self._current: httpx.BaseTransport | None = None

    @contextlib.contextmanager
    def serving(self, transport: httpx.BaseTransport) -> Iterator[None]:
        previous, self._current = self._current, transport
        try:
            yield
        finally:
            self._current = previous

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        current = self._current
        if current is None:
            # A request between cases is a straggler of a finished run: a bug to see.
            return error_response(503, "fte eval: no case is being served", type="server_error")
        return current.handle_request(request)
