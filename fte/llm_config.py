"""How to reach the model server, and how patient to be with it: `LLMConfig`.

Apart from `fte.llm` (the client) because settings need it, and commands that only read
settings (`fte status` of an unknown run, `fte list`) should not import httpx and
tenacity with it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
ByteCount = Annotated[int, Field(gt=0)]


class LLMConfig(BaseModel):
    """How to reach the model server and how patient to be with it inside one call."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr | None = None
    base_url: str | None = None
    timeout_s: float = 60
    """Longest wait for any one socket operation (httpx's per-read timeout)."""
    max_http_attempts: int = 3
    backoff_base_s: float = 0.5
    # The limits below are settings (`llm_<name>`, `FTE_LLM_<NAME>`); see `LIMIT_FIELDS`.
    request_deadline_s: Seconds = 300
    """Longest one HTTP request may take in total, body included: a server trickling bytes
    resets the read timeout with each one, never this."""
    attempt_deadline_s: Seconds = 600
    """Longest one model call (one activity attempt) may take: every HTTP attempt, every
    wait between them and the repair call."""
    max_retry_after_s: Seconds = 30
    """Longest wait between HTTP attempts; a server asking for more (Retry-After) fails the
    attempt at once, and the workflow's retry policy decides what happens next."""
    max_response_bytes: ByteCount = 1_000_000
    """Largest answer accepted. Agent results travel in gRPC messages of at most 4 MB."""
    max_concurrent_requests: Annotated[int, Field(gt=0, le=1024)] = 16
    """Most requests one worker has in flight to the model server at once. Providers
    rate-limit by concurrency and tokens per minute; a run fans out one source finder per
    sub-question, and several runs may share a worker. Further calls wait their turn, and
    the wait counts against the attempt deadline."""


# The LLMConfig fields that are also user settings, as `llm_<name>` / `FTE_LLM_<NAME>`.
LIMIT_FIELDS = (
    "request_deadline_s",
    "attempt_deadline_s",
    "max_retry_after_s",
    "max_response_bytes",
    "max_concurrent_requests",
)


def setting_name(field: str) -> str:
    """The environment variable of an `LLMConfig` limit (`LIMIT_FIELDS`)."""
    return f"FTE_LLM_{field.upper()}"


def url_credentials(url: str | None) -> list[str]:
    """The secret in a URL's userinfo (its password, or a user name standing alone, which is
    how gateways take a token), as written and percent-decoded."""
    if not url:
        return []
    parts = urlsplit(url)
    secret = parts.password if parts.password is not None else parts.username
    if not secret:
        return []
    return list(dict.fromkeys([secret, unquote(secret)]))


def mask_url(url: str) -> str:
    """`url` with the secret of its userinfo replaced by `****` (the user name stays)."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    user, colon, _ = userinfo.partition(":")
    masked = f"{user}:****" if colon else "****"
    return urlunsplit(parts._replace(netloc=f"{masked}@{host}"))
