"""Recorded embeddings: vectors from a real model, replayed as an `/embeddings` endpoint.

Hybrid retrieval's gain is measured offline (`benchmarks/hybrid_retrieval.py`) from vectors
recorded once from a real embeddings model. The file maps the SHA-256 (first 16 hex digits)
of each embedded text — a passage with its title and heading, or a query — to its vector,
stored as float16 (the ranking does not need more, and it keeps the file a few MB). Keys
are text hashes, not passage IDs, so re-chunking only misses the passages whose text
changed, and a missing text is an error (HTTP 404) rather than a silent lexical fallback.

`ReplayTransport` answers the project's own client (`fte.embeddings.OpenAIEmbeddings`) at
the HTTP layer, so batching, ordering and error mapping are what runs; `Recorder` wraps a
live embedder to collect what it was asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from fte.embeddings import Embedder
from fte.errors import UsageError


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(path: Path) -> tuple[str, dict[str, list[float]]]:
    """The model name and the vectors by text key of a recording."""
    import numpy

    try:
        with numpy.load(path) as data:
            model = str(data["model"])
            keys = [str(k) for k in data["keys"]]
            vectors = data["vectors"].astype(numpy.float32)
    except (OSError, KeyError, ValueError) as error:
        raise UsageError(f"cannot read recorded embeddings {path}: {error}") from None
    return model, {k: [float(x) for x in v] for k, v in zip(keys, vectors, strict=True)}


def save(path: Path, model: str, vectors: Mapping[str, Sequence[float]]) -> None:
    import numpy

    keys = sorted(vectors)
    numpy.savez_compressed(
        path,
        model=numpy.array(model),
        keys=numpy.array(keys),
        vectors=numpy.asarray([vectors[k] for k in keys], dtype=numpy.float16),
    )


class ReplayTransport(httpx.BaseTransport):
    """An OpenAI-compatible `/embeddings` endpoint that answers from recorded vectors."""

    def __init__(self, model: str, vectors: Mapping[str, Sequence[float]]) -> None:
        self.model = model
        self.vectors = vectors
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if not request.url.path.endswith("/embeddings"):
            return httpx.Response(404, json={"error": f"no route {request.url.path}"})
        body = json.loads(request.content)
        if body.get("model") != self.model:
            return httpx.Response(404, json={"error": f"recorded model is {self.model}"})
        texts = body["input"]
        missing = [t[:60] for t in texts if text_key(t) not in self.vectors]
        if missing:
            return httpx.Response(404, json={"error": f"not recorded: {missing[:3]}"})
        data = [
            {"index": i, "embedding": list(self.vectors[text_key(t)])} for i, t in enumerate(texts)
        ]
        return httpx.Response(200, json={"data": data})


class Recorder:
    """An embedder that passes through to a live one and keeps every vector it returned."""

    def __init__(self, inner: Embedder) -> None:
        self.model = inner.model
        self.inner = inner
        self.vectors: dict[str, list[float]] = {}

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self.inner.embed(texts)
        for text, vector in zip(texts, vectors, strict=True):
            self.vectors[text_key(text)] = vector
        return vectors
