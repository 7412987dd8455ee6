"""Benchmark: which search library should hold the corpus index? (issue 10)

Side by side in one run, over the same passages and the same terms (`fte.text.tokenize`,
so only the engines differ): SQLite FTS5 (standard library), tantivy and bm25s, each for

- time to index N passages (the Dapr docs' passages, replicated with varied vocabulary),
- time to re-open the index in a fresh process, search latency p50/p95 and the process's
  peak RSS while it searches (a separate process per engine, so one's memory is not
  another's),
- page-level hit@8 / recall@8 on the retrieval suite's Dapr-docs questions (single query).

    python benchmarks/search_engines.py [--passages 100000] [--engines fts5,tantivy,bm25s]

tantivy and bm25s are not project dependencies (`pip install tantivy bm25s` to compare
them); an engine whose library is missing is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from fte.evals import metrics
from fte.evals.data import corpus_dir, load_toml
from fte.evals.retrieval import QuestionSet
from fte.sources import LocalCorpus
from fte.text import tokenize

DEPTH = 50


class Engine(Protocol):
    def build(self, rows: Sequence[tuple[str, str, str]], where: Path) -> None: ...
    def open(self, where: Path) -> None: ...
    def search(self, query: str, k: int) -> list[int]: ...


def _terms(text: str) -> str:
    return " ".join(tokenize(text))


class Fts5:
    def build(self, rows: Sequence[tuple[str, str, str]], where: Path) -> None:
        db = sqlite3.connect(where / "index.sqlite")
        db.execute("CREATE VIRTUAL TABLE p USING fts5(title, body, tokenize='unicode61')")
        with db:
            db.executemany(
                "INSERT INTO p(rowid, title, body) VALUES (?, ?, ?)",
                ((i, _terms(t), _terms(b)) for i, (_, t, b) in enumerate(rows)),
            )
        db.execute("INSERT INTO p(p) VALUES ('optimize')")
        db.commit()
        db.close()

    def open(self, where: Path) -> None:
        self.db = sqlite3.connect(where / "index.sqlite")

    def search(self, query: str, k: int) -> list[int]:
        terms = dict.fromkeys(tokenize(query))
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        rows = self.db.execute(
            "SELECT rowid FROM p WHERE p MATCH ? ORDER BY bm25(p, 2.0, 1.0) LIMIT ?", (match, k)
        )
        return [r[0] for r in rows]


class Tantivy:
    def _schema(self) -> Any:
        import tantivy

        builder = tantivy.SchemaBuilder()
        builder.add_integer_field("row", stored=True, indexed=False)
        builder.add_text_field("title")
        builder.add_text_field("body")
        return builder.build()

    def build(self, rows: Sequence[tuple[str, str, str]], where: Path) -> None:
        import tantivy

        index = tantivy.Index(self._schema(), path=str(where))
        writer = index.writer(heap_size=100_000_000, num_threads=2)
        for i, (_, t, b) in enumerate(rows):
            writer.add_document(tantivy.Document(row=i, title=_terms(t), body=_terms(b)))
        writer.commit()
        writer.wait_merging_threads()

    def open(self, where: Path) -> None:
        import tantivy

        self.index = tantivy.Index.open(str(where))
        self.searcher = self.index.searcher()

    def search(self, query: str, k: int) -> list[int]:
        terms = list(dict.fromkeys(tokenize(query)))
        if not terms:
            return []
        q = self.index.parse_query(" ".join(terms), ["title", "body"], field_boosts={"title": 2.0})
        hits = self.searcher.search(q, k).hits
        return [self.searcher.doc(address)["row"][0] for _, address in hits]


class Bm25s:
    def build(self, rows: Sequence[tuple[str, str, str]], where: Path) -> None:
        bm25s = importlib.import_module("bm25s")  # not a project dependency: untyped

        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenization.Tokenized(*_vocab([tokenize(f"{t}\n{b}") for _, t, b in rows])),
            show_progress=False,
        )
        retriever.save(str(where))

    def open(self, where: Path) -> None:
        bm25s = importlib.import_module("bm25s")  # not a project dependency: untyped

        self.retriever = bm25s.BM25.load(str(where), mmap=True)

    def search(self, query: str, k: int) -> list[int]:
        vocab = self.retriever.vocab_dict
        ids = [vocab[t] for t in dict.fromkeys(tokenize(query)) if t in vocab]
        if not ids:
            return []
        scores = self.retriever.get_scores(ids)
        top = scores.argsort()[::-1][:k]
        return [int(i) for i in top if scores[i] > 0]


def _vocab(docs: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {}
    return [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in docs], vocab


class FteIndex:
    """The project's own corpus index end to end: files read, chunked and indexed by
    `LocalCorpus.load`, re-opened from the manifest. Its rows are written out as files."""

    def build(self, rows: Sequence[tuple[str, str, str]], where: Path) -> None:
        documents: dict[str, list[str]] = {}
        for path, title, text in rows:
            documents.setdefault(path, [f"---\ntitle: {json.dumps(title)}\n---\n"]).append(text)
        for path, parts in documents.items():
            target = where / "corpus" / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n\n".join(parts))
        started = time.perf_counter()
        self.open(where)
        self.indexed_s = time.perf_counter() - started
        self.passages = len(self.corpus)

    def open(self, where: Path) -> None:
        self.corpus = LocalCorpus.load(where / "corpus", index_dir=where / "index")
        self.root = where / "corpus"

    def search(self, query: str, k: int) -> list[int]:
        return [hash(p.location) for p in self.corpus.search(query, limit=k)]


ENGINES: dict[str, type[Engine]] = {
    "fts5": Fts5,
    "tantivy": Tantivy,
    "bm25s": Bm25s,
    "fte": FteIndex,
}
LIBRARIES = {"fts5": "sqlite3", "tantivy": "tantivy", "bm25s": "bm25s", "fte": "tantivy"}


def _dapr_rows() -> tuple[list[tuple[str, str, str]], Path]:
    root = corpus_dir("dapr-docs")
    corpus = LocalCorpus.load(root)
    rows = [
        (Path(p.location).relative_to(root).as_posix(), p.title, p.text) for p in corpus.passages
    ]
    return rows, root


def _replicated(rows: list[tuple[str, str, str]], n: int) -> list[tuple[str, str, str]]:
    """`n` passages: copies of `rows`, each copy with its own made-up words mixed in.

    Pure copies would leave the vocabulary at the Dapr docs' size; the extra words grow it
    roughly as more real documents would.
    """
    rng = random.Random(7)
    out: list[tuple[str, str, str]] = []
    copy = 0
    while len(out) < n:
        for path, title, text in rows:
            words = text.split()
            for _ in range(max(1, len(words) // 10)):
                words.insert(rng.randrange(len(words) + 1), f"w{copy}x{rng.randrange(5000)}")
            out.append((f"copy{copy}/{path}", title, " ".join(words)))
            if len(out) == n:
                break
        copy += 1
    return out


def _child(name: str, where: Path, queries: list[str], rounds: int) -> dict[str, float]:
    engine = ENGINES[name]()
    started = time.perf_counter()
    engine.open(where)
    engine.search(queries[0], 8)  # the first search pages the index in: part of re-opening
    reopen = time.perf_counter() - started
    latencies = []
    for _ in range(rounds):
        for query in queries:
            t = time.perf_counter()
            engine.search(query, 8)
            latencies.append((time.perf_counter() - t) * 1000)
    latencies.sort()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {
        "reopen_s": reopen,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        # VmHWM, not ru_maxrss: the latter survives exec and would show the parent's peak.
        "peak_rss_mib": int(status["VmHWM"].split()[0]) / 1024,
        # Private memory, without the index pages mapped from the page cache.
        "anon_mib": int(status["RssAnon"].split()[0]) / 1024,
    }


def _quality(
    name: str, rows: list[tuple[str, str, str]], root: Path, questions: QuestionSet
) -> dict[str, float]:
    if name == "fte":  # the real documents, chunked by the project's own reader
        return _fte_quality(root, questions)
    engine = ENGINES[name]()
    with tempfile.TemporaryDirectory() as tmp:
        engine.build(rows, Path(tmp))
        engine.open(Path(tmp))
        hits, recalls = [], []
        for q in questions.questions:
            ranked = metrics.ranked_pages(rows[i][0] for i in engine.search(q.question, DEPTH))
            hits.append(metrics.hit_at(ranked, q.relevant, 8))
            recalls.append(metrics.recall_at(ranked, q.relevant, 8))
    return {"hit_at_8": metrics.mean(hits), "recall_at_8": metrics.mean(recalls)}


def _fte_quality(root: Path, questions: QuestionSet) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        corpus = LocalCorpus.load(root, index_dir=Path(tmp))
        hits, recalls = [], []
        for q in questions.questions:
            found = corpus.search(q.question, limit=DEPTH)
            ranked = metrics.ranked_pages(
                Path(p.location).relative_to(root).as_posix() for p in found
            )
            hits.append(metrics.hit_at(ranked, q.relevant, 8))
            recalls.append(metrics.recall_at(ranked, q.relevant, 8))
    return {"hit_at_8": metrics.mean(hits), "recall_at_8": metrics.mean(recalls)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--engines", default="fte,fts5,tantivy,bm25s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("ENGINE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    questions = load_toml("retrieval/dapr-docs.toml", QuestionSet)
    queries = [q.question for q in questions.questions]
    if args.child:
        print(json.dumps(_child(args.child[0], Path(args.child[1]), queries, args.rounds)))
        return 0
    rows, root = _dapr_rows()
    big = _replicated(rows, args.passages)
    print(f"{len(rows):,} Dapr-docs passages; benchmark corpus {len(big):,} passages")
    print(
        f"{'engine':8} {'index s':>8} {'reopen s':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'RSS MiB':>8} {'anon MiB':>8} {'hit@8':>6} {'rec@8':>6}"
    )
    for name in args.engines.split(","):
        try:
            __import__(LIBRARIES[name])
        except ImportError:
            print(f"{name:8} skipped: {LIBRARIES[name]} is not installed")
            continue
        where = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
        try:
            engine = ENGINES[name]()
            started = time.perf_counter()
            engine.build(big, where)
            # The project's index is timed from its files, not from writing them out.
            index_s = getattr(engine, "indexed_s", time.perf_counter() - started)
            if isinstance(engine, FteIndex):
                print(f"(fte re-chunked the written files into {engine.passages:,} passages)")
            del engine
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    name,
                    str(where),
                    "--rounds",
                    str(args.rounds),
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            child = json.loads(out)
        finally:
            shutil.rmtree(where, ignore_errors=True)
        quality = _quality(name, rows, root, questions)
        print(
            f"{name:8} {index_s:8.1f} {child['reopen_s']:9.3f} {child['p50_ms']:7.2f} "
            f"{child['p95_ms']:7.2f} {child['peak_rss_mib']:8.0f} {child['anon_mib']:8.0f} "
            f"{quality['hit_at_8']:6.3f} {quality['recall_at_8']:6.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
