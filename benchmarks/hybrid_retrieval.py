"""Benchmark: does hybrid retrieval (BM25 + vectors, RRF) find more answering pages? (issue 10)

Side by side in one run, on the retrieval suite's questions (single query, the question
itself) over the Dapr docs and the examples corpus: page-level hit@8, recall@8 and MRR of
the lexical search and of the hybrid search, both through `LocalCorpus` exactly as a run
searches. The hybrid side embeds through the project's own client
(`fte.embeddings.OpenAIEmbeddings`) against a replay transport that answers from vectors
recorded once from a real model (`evals/retrieval/embeddings-all-minilm-l6-v2.npz`,
`fte.evals.recorded_embeddings`): no network, no model needed.

    python benchmarks/hybrid_retrieval.py

To record the vectors again (every passage of both corpora and every question), start the
model's server (`benchmarks/embeddings_server.py`, in its scratch virtualenv) and run

    python benchmarks/hybrid_retrieval.py --record http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import httpx

from fte.embeddings import Embedder, OpenAIEmbeddings
from fte.evals import metrics
from fte.evals import recorded_embeddings as recorded
from fte.evals.data import corpus_dir, data_dir, load_toml
from fte.evals.retrieval import FILES, SEARCH_DEPTH, QuestionSet
from fte.sources import LocalCorpus

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
RECORDING = "retrieval/embeddings-all-minilm-l6-v2.npz"
K = 8


def _scores(corpus: LocalCorpus, root: Path, questions: QuestionSet) -> dict[str, float]:
    hits: list[float] = []
    recalls: list[float] = []
    ranks: list[float] = []
    for q in questions.questions:
        passages = corpus.search(q.question, limit=SEARCH_DEPTH)
        pages = metrics.ranked_pages(
            Path(p.location).relative_to(root).as_posix() for p in passages
        )
        hits.append(metrics.hit_at(pages, q.relevant, K))
        recalls.append(metrics.recall_at(pages, q.relevant, K))
        ranks.append(metrics.reciprocal_rank(pages, q.relevant))
    return {
        f"hit@{K}": metrics.mean(hits),
        f"recall@{K}": metrics.mean(recalls),
        "MRR": metrics.mean(ranks),
    }


def _suites() -> list[tuple[QuestionSet, Path]]:
    suites = []
    for file in FILES:
        questions = load_toml(file, QuestionSet)
        suites.append((questions, corpus_dir(questions.corpus)))
    return suites


def record(base_url: str) -> None:
    live = OpenAIEmbeddings(
        MODEL, base_url=base_url, api_key="", client=httpx.Client(timeout=httpx.Timeout(600.0))
    )
    recorder = recorded.Recorder(live)
    for questions, root in _suites():
        with tempfile.TemporaryDirectory() as index_dir:
            corpus = LocalCorpus.load(root, index_dir=Path(index_dir), embedder=recorder)
            _scores(corpus, root, questions)  # embeds every question through the recorder
        print(f"{questions.corpus}: {len(recorder.vectors)} vectors so far", file=sys.stderr)
    path = data_dir() / RECORDING
    recorded.save(path, MODEL, recorder.vectors)
    size = path.stat().st_size / 1e6
    print(f"recorded {len(recorder.vectors)} vectors of {MODEL} to {path} ({size:.1f} MB)")


def compare() -> None:
    model, vectors = recorded.load(data_dir() / RECORDING)
    transport = recorded.ReplayTransport(model, vectors)
    replayed: Embedder = OpenAIEmbeddings(
        model,
        base_url="http://recorded.invalid/v1",
        api_key="",
        client=httpx.Client(transport=transport),
    )
    print(f"Hybrid retrieval (BM25 + {model} vectors, reciprocal rank fusion) vs lexical")
    print(f"single query, page level, {len(vectors)} recorded vectors\n")
    header = f"{'corpus':<11} {'questions':>9}  {'metric':<9} " + "".join(
        f"{name:>9}" for name in ("lexical", "hybrid", "change")
    )
    print(header)
    print("-" * len(header))
    for questions, root in _suites():
        with tempfile.TemporaryDirectory() as index_dir:
            lexical = _scores(LocalCorpus.load(root, index_dir=Path(index_dir)), root, questions)
            hybrid_corpus = LocalCorpus.load(root, index_dir=Path(index_dir), embedder=replayed)
            hybrid = _scores(hybrid_corpus, root, questions)
        for name in lexical:
            print(
                f"{questions.corpus:<11} {len(questions.questions):>9}  {name:<9} "
                f"{lexical[name]:>9.3f}{hybrid[name]:>9.3f}{hybrid[name] - lexical[name]:>+9.3f}"
            )
    print(f"\n{transport.requests} embeddings requests answered from the recording")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", metavar="BASE_URL", help="record vectors from this server")
    args = parser.parse_args(argv)
    if args.record:
        record(args.record)
    else:
        compare()


if __name__ == "__main__":
    main()
