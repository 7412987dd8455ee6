"""Passage and query embeddings from an OpenAI-compatible `/embeddings` endpoint.

Hybrid retrieval is on only when `FTE_EMBEDDINGS_MODEL` names a model; the server is the
chat model's (`OPENAI_BASE_URL`, else OpenAI's API when `OPENAI_API_KEY` is set), with the
same key. Without it, search stays lexical.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Protocol

import httpx

from fte.errors import UsageError

EMBEDDINGS_MODEL_ENV = "FTE_EMBEDDINGS_MODEL"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
# Inputs per request: big enough to embed a corpus in few calls, small enough for any server.
BATCH = 64
# Embedding inputs are passages (<= 1,200 characters) and queries; this only bounds a reply.
MAX_RESPONSE_BYTES = 64 * 1024 * 1024


class EmbeddingsError(UsageError):
    """The embeddings server refused or answered something unusable (never shows the key)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        """A network error or a 5xx/429: the server may answer next time."""


class Embedder(Protocol):
    model: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order."""
        ...


class OpenAIEmbeddings:
    def __init__(self, model: str, *, base_url: str, api_key: str, client: httpx.Client) -> None:
        self.model = model
        self._url = base_url.rstrip("/") + "/embeddings"
        self._key = api_key
        self._client = client

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            vectors += self._batch(list(texts[start : start + BATCH]))
        return vectors

    def _batch(self, texts: list[str]) -> list[list[float]]:
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        try:
            response = self._client.post(
                self._url, json={"model": self.model, "input": texts}, headers=headers
            )
        except httpx.HTTPError as error:
            raise EmbeddingsError(
                f"embeddings request failed ({type(error).__name__})", transient=True
            ) from None
        if response.status_code in (401, 403):
            raise EmbeddingsError(
                f"the embeddings server refused the API key (HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise EmbeddingsError(
                f"embeddings request failed with HTTP {response.status_code}",
                transient=response.status_code == 429 or response.status_code >= 500,
            )
        try:
            items = response.json()["data"]
            ordered = sorted(items, key=lambda item: int(item["index"]))
            vectors = [[float(x) for x in item["embedding"]] for item in ordered]
        except (ValueError, KeyError, TypeError):
            raise EmbeddingsError(
                "the embeddings server answered in an unexpected format"
            ) from None
        if len(vectors) != len(texts) or len({len(v) for v in vectors}) > 1:
            raise EmbeddingsError(
                f"the embeddings server returned {len(vectors)} vectors for {len(texts)} inputs"
            )
        return vectors


_client: httpx.Client | None = None


def embedder_from_env(env: Mapping[str, str] = os.environ) -> Embedder | None:
    """The configured embedder, or None when hybrid retrieval is not configured."""
    global _client
    model = env.get(EMBEDDINGS_MODEL_ENV, "").strip()
    if not model:
        return None
    base_url = env.get("OPENAI_BASE_URL", "").strip()
    api_key = env.get("OPENAI_API_KEY", "").strip()
    if not base_url and not api_key:
        raise UsageError(
            f"{EMBEDDINGS_MODEL_ENV}={model} needs OPENAI_BASE_URL or OPENAI_API_KEY "
            "(the embeddings server is the chat model's)"
        )
    if _client is None:
        _client = httpx.Client(timeout=httpx.Timeout(60.0))
    return OpenAIEmbeddings(
        model, base_url=base_url or DEFAULT_BASE_URL, api_key=api_key, client=_client
    )
