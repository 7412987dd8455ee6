"""The one builder of OpenAI chat-completion bodies that the test doubles share."""

from __future__ import annotations

from typing import Any


def completion_body(
    content: str,
    *,
    prompt_tokens: int = 11,
    completion_tokens: int = 7,
    model: str = "test-model",
    completion_id: str = "chatcmpl-test",
) -> dict[str, Any]:
    """A 200 chat completion whose message content is `content`."""
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


def error_body(message: str, *, type: str, code: str | None = None) -> dict[str, Any]:
    """An error shaped like OpenAI's: {"error": {message, type, code, param}}."""
    return {"error": {"message": message, "type": type, "code": code, "param": None}}
