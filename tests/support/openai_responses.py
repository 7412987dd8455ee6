"""OpenAI response bodies for the test doubles, with test defaults (built by fte.evals)."""

from __future__ import annotations

from typing import Any

from fte.evals.transports import completion


def completion_body(
    content: str,
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str = "test-model",
    completion_id: str = "chatcmpl-test",
) -> dict[str, Any]:
    """A 200 chat completion whose message content is `content`."""
    return completion(
        content,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        completion_id=completion_id,
    )


def error_body(message: str, *, type: str, code: str | None = None) -> dict[str, Any]:
    """An error shaped like OpenAI's: {"error": {message, type, code, param}}."""
    return {"error": {"message": message, "type": type, "code": code, "param": None}}
