"""Hybrid retrieval: passages embedded once (kept beside the index), only new and changed
ones embedded on update, vector and lexical rankings fused; off without FTE_EMBEDDINGS_MODEL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
import respx

from fte.embeddings import EmbeddingsError, OpenAIEmbeddings, embedder_from_env
from fte.errors import UsageError
from fte.sources import LocalCorpus

URL = "http://embeddings.test/v1/embeddings"
# A toy embedding model: words of one concept share a dimension, so "automobile" and
# "car" are near though they share no term — what lexical search cannot see.
CONCEPTS = [
    {"car", "cars", "automobile", "automobiles", "vehicle"},
    {"timer", "timers", "alarm", "clock"},
    {"saga", "sagas", "compensation", "undo"},
    {"banana", "bananas", "fruit"},
]


def vector(text: str) -> list[float]:
    words = {w.strip(".,?!").lower() for w in text.split()}
    return [float(len(words & concept)) + 0.01 for concept in CONCEPTS]


class Server:
    def __init__(self) -> None:
        self.inputs: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["model"] == "toy-embed"
        self.inputs += body["input"]
        data = [{"index": i, "embedding": vector(t)} for i, t in enumerate(body["input"])]
        return httpx.Response(200, json={"data": list(reversed(data))})


@pytest.fixture
def server(http_mock: respx.MockRouter) -> Server:
    fake = Server()
    http_mock.post(URL).mock(side_effect=fake)
    return fake


@pytest.fixture
def embedder() -> OpenAIEmbeddings:
    return OpenAIEmbeddings(
        "toy-embed", base_url="http://embeddings.test/v1", api_key="", client=httpx.Client()
    )


def write(root: Path, name: str, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    path.write_text(text)
    return path


def test_hybrid_search_finds_what_shares_meaning_but_no_words(
    tmp_path: Path, server: Server, embedder: OpenAIEmbeddings
) -> None:
    docs = tmp_path / "docs"
    write(docs, "vehicles.md", "# Fleet\n\nEvery car in the fleet is serviced yearly.")
    write(docs, "timers.md", "# Timers\n\nA timer fires after its delay.")
    write(docs, "fruit.md", "# Fruit\n\nBananas ripen next to apples.")
    lexical = LocalCorpus.load(docs, index_dir=tmp_path / "index")
    assert lexical.search("automobile maintenance", limit=3) == []

    hybrid = LocalCorpus.load(docs, index_dir=tmp_path / "index", embedder=embedder)
    found = hybrid.search("automobile maintenance", limit=3)
    assert Path(found[0].location).name == "vehicles.md"
    assert found[0].score > 0
    # A lexical match still ranks: it is first in one ranking and near in the other.
    assert Path(hybrid.search("timer delay", limit=1)[0].location).name == "timers.md"


def test_passages_are_embedded_once_and_only_changed_ones_again(
    tmp_path: Path, server: Server, embedder: OpenAIEmbeddings
) -> None:
    docs = tmp_path / "docs"
    write(docs, "a.md", "# A\n\nThe car.")
    changed = write(docs, "b.md", "# B\n\nThe timer.")
    LocalCorpus.load(docs, index_dir=tmp_path / "index", embedder=embedder)
    assert len(server.inputs) == 2

    LocalCorpus.load(docs, index_dir=tmp_path / "index", embedder=embedder)
    assert len(server.inputs) == 2  # re-opened: nothing embedded again

    changed.write_text("# B\n\nThe saga and its compensation.")
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    corpus = LocalCorpus.load(docs, index_dir=tmp_path / "index", embedder=embedder)
    # Only the changed passage, embedded with its title as the lexical index sees it.
    assert server.inputs[2:] == ["B\n# B\n\nThe saga and its compensation."]
    assert Path(corpus.search("undo", limit=1)[0].location).name == "b.md"


def test_embeddings_are_configured_from_the_environment() -> None:
    assert embedder_from_env({}) is None
    configured = embedder_from_env(
        {"FTE_EMBEDDINGS_MODEL": "m", "OPENAI_BASE_URL": "http://localhost:1/v1"}
    )
    assert configured is not None and configured.model == "m"
    with pytest.raises(UsageError, match="needs OPENAI_BASE_URL or OPENAI_API_KEY"):
        embedder_from_env({"FTE_EMBEDDINGS_MODEL": "m"})


def test_a_refused_key_is_a_clear_error(
    http_mock: respx.MockRouter, embedder: OpenAIEmbeddings
) -> None:
    http_mock.post(URL).respond(401, json={"error": "bad key"})
    with pytest.raises(EmbeddingsError, match=r"refused the API key \(HTTP 401\)"):
        embedder.embed(["x"])


def test_a_server_down_for_a_search_leaves_the_lexical_half(
    tmp_path: Path, http_mock: respx.MockRouter, embedder: OpenAIEmbeddings
) -> None:
    fake = Server()
    answers = iter([None, httpx.Response(503), httpx.Response(401)])

    def serve(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        return fake(request) if answer is None else answer

    http_mock.post(URL).mock(side_effect=serve)
    docs = tmp_path / "docs"
    write(docs, "timers.md", "# Timers\n\nA timer fires after its delay.")
    corpus = LocalCorpus.load(docs, index_dir=tmp_path / "index", embedder=embedder)
    found = corpus.search("timer delay", limit=2)  # 503: lexical only
    assert [Path(p.location).name for p in found] == ["timers.md"]
    with pytest.raises(EmbeddingsError, match="refused the API key"):
        corpus.search("timer delay", limit=2)  # 401 is not transient: said, not hidden
