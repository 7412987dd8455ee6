"""Builders for OpenAI chat-completions HTTP responses, and a strict response script."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from typing import Any

import httpx
import respx

from tests.support.openai_responses import completion_body, error_body

OPENAI_CHAT_URL = "https://api.openai.com/v1/chat/completions"

Step = httpx.Response | Exception


def completion(
    content: str, *, prompt_tokens: int = 11, completion_tokens: int = 7
) -> httpx.Response:
    """A 200 chat completion whose message content is `content`."""
    return httpx.Response(
        200,
        json=completion_body(
            content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        ),
    )


def completion_json(payload: dict[str, Any], **usage: int) -> httpx.Response:
    return completion(json.dumps(payload), **usage)


def api_error(
    status: int,
    *,
    message: str = "test error",
    code: str | None = None,
    type: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An error response shaped like OpenAI's: {"error": {message, type, code, param}}."""
    return httpx.Response(status, json=error_body(message, type=type, code=code), headers=headers)


class Script:
    """Answers successive requests with the given steps, and fails both ways.

    A request after the script ran out raises (and is remembered, because the SDK may turn an
    exception into something the code under test swallows); steps never consumed fail the test
    at teardown.
    """

    def __init__(self, steps: Sequence[Step]) -> None:
        self._pending: deque[Step] = deque(steps)
        self.requests: list[httpx.Request] = []
        self.unexpected = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self._pending:
            self.unexpected += 1
            raise AssertionError(f"unscripted request #{len(self.requests)} to {request.url}")
        step = self._pending.popleft()
        if isinstance(step, Exception):
            raise step
        return step

    def problems(self) -> list[str]:
        found = []
        if self.unexpected:
            found.append(f"{self.unexpected} request(s) arrived after the script ran out")
        if self._pending:
            found.append(f"{len(self._pending)} scripted response(s) were never requested")
        return found


def request_bodies(route: respx.Route) -> list[dict[str, Any]]:
    """The JSON bodies of the requests a route received, in order."""
    return [json.loads(call.request.content) for call in route.calls]
