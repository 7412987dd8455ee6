"""Recorded embeddings replayed through the project's own client: the hybrid ranking uses the
recorded vectors (a query sharing no word with its page still finds it), a text that was not
recorded is an error, and the committed recording covers every retrieval question."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from fte.embeddings import EmbeddingsError, OpenAIEmbeddings
from fte.evals import recorded_embeddings as recorded
from fte.evals.data import data_dir, load_toml
from fte.evals.retrieval import FILES, QuestionSet
from fte.sources import LocalCorpus

# A toy model for the recording side: one dimension per concept, so "automobile" is near
# "car" though the two share no term.
CONCEPTS = [{"car", "automobile", "vehicle"}, {"timer", "clock"}, {"banana", "fruit"}]


class ToyModel:
    model = "toy-embed"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            words = {w.strip(".,?!#").lower() for w in text.split()}
            out.append([float(len(words & c)) + 0.01 for c in CONCEPTS])
        return out


def replaying(path: Path) -> tuple[OpenAIEmbeddings, recorded.ReplayTransport]:
    model, vectors = recorded.load(path)
    transport = recorded.ReplayTransport(model, vectors)
    client = httpx.Client(transport=transport)
    return OpenAIEmbeddings(model, base_url="http://replay.test/v1", api_key="", client=client), (
        transport
    )


def test_hybrid_search_replays_the_recorded_vectors(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "vehicles.md").write_text("# Fleet\n\nEvery car in the fleet is serviced yearly.")
    (docs / "timers.md").write_text("# Timers\n\nA timer fires after its delay.")
    (docs / "fruit.md").write_text("# Fruit\n\nBananas ripen next to apples.")
    recorder = recorded.Recorder(ToyModel())
    LocalCorpus.load(docs, index_dir=tmp_path / "record", embedder=recorder)
    recorder.embed(["automobile maintenance"])
    recording = tmp_path / "vectors.npz"
    recorded.save(recording, recorder.model, recorder.vectors)

    embedder, transport = replaying(recording)
    corpus = LocalCorpus.load(docs, index_dir=tmp_path / "replay", embedder=embedder)
    found = corpus.search("automobile maintenance", limit=3)
    # Lexically nothing matches; only the recorded vectors can put the fleet page first.
    lexical = LocalCorpus.load(docs, index_dir=tmp_path / "lexical")
    assert lexical.search("automobile maintenance", limit=3) == []
    assert Path(found[0].location).name == "vehicles.md"
    assert transport.requests == 2  # the three passages in one batch, then the query

    with pytest.raises(EmbeddingsError, match="HTTP 404"):
        corpus.search("a question nobody recorded", limit=3)


def test_the_committed_recording_covers_every_retrieval_question() -> None:
    model, vectors = recorded.load(data_dir() / "retrieval/embeddings-all-minilm-l6-v2.npz")
    assert model == "sentence-transformers/all-MiniLM-L6-v2"
    for file in FILES:
        for q in load_toml(file, QuestionSet).questions:
            assert recorded.text_key(q.question) in vectors, q.id
    assert {len(v) for v in vectors.values()} == {384}
