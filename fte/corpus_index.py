"""The persistent passage index of a local corpus: tantivy on disk, one per corpus.

Why tantivy: `benchmarks/search_engines.py` compares it side by side with SQLite FTS5
and bm25s over the same 100k passages and terms (README, "Sources"): FTS5 ranks every
matching row to sort by bm25() and misses the 20 ms search goal several times over; bm25s
holds its whole score matrix in memory and has no incremental update; tantivy meets the
goals, re-opens by memory-mapping its segments and deletes and adds documents in place.

The index lives under the data directory (`<data>/index/<key>/`), keyed by the corpus
root and the chunking parameters, next to a manifest of the files it holds (size and
mtime of each), so a re-open reads nothing but that manifest and a changed corpus
re-reads only its changed files. Every process (the CLI, each worker) opens the same index;
one writer at a time updates it under an exclusive `flock`, and readers take the same lock
shared while they open it, so nobody opens a half-committed index.

Terms are `fte.text.tokenize`'s (stemmed, stop words dropped), joined by spaces before
tantivy sees them: the project has one notion of a word, for search and citation checks.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import tantivy

from fte.contracts import Passage
from fte.embeddings import Embedder
from fte.index_dir import INDEX_DIR_ENV as INDEX_DIR_ENV
from fte.index_dir import default_index_dir as default_index_dir
from fte.index_dir import use_index_dir as use_index_dir
from fte.text import tokenize

# Bump when the schema, the chunking or the terms change: older indexes are then rebuilt
# (they live under another key) rather than misread.
INDEX_VERSION = 3
# How much each field's BM25 counts. Each field has its own length norm, so a word of a
# short title already scores high; the weights were chosen on the retrieval suite (README,
# "Sources"): heavier titles or headings pull whole pages of near-misses above the answer.
FIELD_BOOSTS = {"title_terms": 0.5, "heading_terms": 0.1, "about_terms": 0.5, "body_terms": 1.0}
_WRITER_HEAP_BYTES = 64 * 1024 * 1024


def index_location(base: Path, root: Path, *, chunk_chars: int, overlap_chars: int) -> Path:
    key = f"{INDEX_VERSION}\0{root}\0{chunk_chars}\0{overlap_chars}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return base / f"{root.name[:40] or 'root'}-{digest}"


@dataclass(frozen=True)
class IndexedPassage:
    """What the index keeps of one passage; `about` is indexed but not kept."""

    passage_id: str
    path: str
    ordinal: int
    title: str
    heading: str
    page: int | None
    text: str


def _schema() -> tantivy.Schema:
    builder = tantivy.SchemaBuilder()
    # The relative path, as one term: a changed file's passages are deleted by it.
    builder.add_text_field("path", stored=False, tokenizer_name="raw")
    # The passage ID as one term: hybrid search looks up the passages vectors found.
    builder.add_text_field("pid", stored=False, tokenizer_name="raw")
    builder.add_bytes_field("data", stored=True, indexed=False)
    for field in FIELD_BOOSTS:
        builder.add_text_field(field, stored=False)
    return builder.build()


def _terms(text: str) -> str:
    return " ".join(tokenize(text))


class PassageIndex:
    """One corpus's tantivy index: searched by readers, changed file by file by one writer."""

    def __init__(self, directory: Path | None) -> None:
        """The index kept in `directory`, or in memory (for one search's web pages) if None."""
        self._schema = _schema()
        if directory is None:
            self._index = tantivy.Index(self._schema)
        else:
            directory.mkdir(parents=True, exist_ok=True)
            self._index = tantivy.Index(self._schema, path=str(directory), reuse=True)
        self._searcher = self._index.searcher()

    @property
    def num_docs(self) -> int:
        return int(self._searcher.num_docs)

    def search(self, query: str, *, limit: int) -> list[tuple[float, IndexedPassage]]:
        """BM25 over the boosted fields, best first; ties by passage ID (stable across runs)."""
        terms = list(dict.fromkeys(tokenize(query)))
        if not terms or limit <= 0:
            return []
        clauses = [
            (
                tantivy.Occur.Should,
                tantivy.Query.boost_query(
                    tantivy.Query.term_query(self._schema, field, term, index_option="freq"),
                    boost,
                ),
            )
            for term in terms
            for field, boost in FIELD_BOOSTS.items()
        ]
        hits = self._searcher.search(tantivy.Query.boolean_query(clauses), limit).hits
        found = [(float(score), self._passage(address)) for score, address in hits]
        return sorted(found, key=lambda hit: (-hit[0], hit[1].passage_id))

    def get(self, passage_ids: Sequence[str]) -> dict[str, IndexedPassage]:
        """The passages with these IDs (those the index holds)."""
        found: dict[str, IndexedPassage] = {}
        for pid in passage_ids:
            query = tantivy.Query.term_query(self._schema, "pid", pid, index_option="basic")
            for _, address in self._searcher.search(query, 1).hits:
                found[pid] = self._passage(address)
        return found

    def all(self) -> list[IndexedPassage]:
        """Every passage, in file and then chunk order."""
        total = self.num_docs
        if not total:
            return []
        hits = self._searcher.search(tantivy.Query.all_query(), total).hits
        return sorted((self._passage(a) for _, a in hits), key=lambda p: (p.path, p.ordinal))

    def _passage(self, address: Any) -> IndexedPassage:
        data = self._searcher.doc(address)["data"][0]
        return IndexedPassage(**json.loads(bytes(data)))

    @contextlib.contextmanager
    def writing(self) -> Iterator[IndexWriter]:
        """Changes committed together when the block exits, discarded if it raises."""
        writer = self._index.writer(heap_size=_WRITER_HEAP_BYTES, num_threads=1)
        try:
            yield IndexWriter(writer)
        except BaseException:
            writer.rollback()
            raise
        writer.commit()
        writer.wait_merging_threads()
        self._index.reload()
        self._searcher = self._index.searcher()


class IndexWriter:
    def __init__(self, writer: Any) -> None:
        self._writer = writer

    def remove(self, path: str) -> None:
        self._writer.delete_documents_by_term("path", path)

    def add(self, passages: Iterable[IndexedPassage], *, about: str = "") -> None:
        about_terms = _terms(about)
        for passage in passages:
            self._writer.add_document(
                tantivy.Document(
                    path=passage.path,
                    pid=passage.passage_id,
                    data=json.dumps(asdict(passage)).encode(),
                    title_terms=_terms(passage.title),
                    heading_terms=_terms(passage.heading),
                    about_terms=about_terms,
                    body_terms=_terms(passage.text),
                )
            )


def rank_in_memory(passages: Sequence[Passage], query: str, *, limit: int) -> list[Passage]:
    """`passages` ranked for `query` by the same fields and weights as a corpus index."""
    if not passages or limit <= 0:
        return []
    index = PassageIndex(None)
    by_id = {p.passage_id: p for p in passages}
    with index.writing() as writer:
        writer.add(
            IndexedPassage(
                passage_id=p.passage_id,
                path=p.location,
                ordinal=ordinal,
                title=p.title,
                heading=p.section,
                page=p.page,
                text=p.text,
            )
            for ordinal, p in enumerate(by_id.values())
        )
    return [
        by_id[found.passage_id].model_copy(update={"score": score})
        for score, found in index.search(query, limit=limit)
        if score > 0.0
    ]


class VectorIndex:
    """The passages' vectors from one embeddings model (usearch, cosine), beside the index.

    Each passage is embedded once: `keys.json` remembers which text hash each vector is of,
    so an update embeds only new and changed passages and drops the vectors of removed ones.
    """

    def __init__(self, directory: Path, model: str) -> None:
        digest = hashlib.sha256(model.encode()).hexdigest()[:16]
        self.directory = directory / "vectors" / digest
        self.model = model
        self._keys: dict[str, list[Any]] = {}  # passage ID -> [usearch key, text hash]
        self._of = ""
        self._index: Any = None
        keys_file = self.directory / "keys.json"
        if keys_file.is_file() and (self.directory / "index.usearch").is_file():
            stored = json.loads(keys_file.read_text())
            self._keys = stored["keys"]
            self._of = str(stored.get("of", ""))
            from usearch.index import Index

            self._index = Index.restore(str(self.directory / "index.usearch"))
        self._by_key = {int(entry[0]): pid for pid, entry in self._keys.items()}

    def sync(self, index: PassageIndex, embedder: Embedder, *, of: str) -> int:
        """Embed what has no current vector, drop vectors of passages gone; how many embedded.

        `of` names the index's state (its manifest): when the vectors were made for it,
        nothing is read, so re-opening a large corpus does not walk its passages.
        """
        if self._of == of:
            return 0
        passages = index.all()
        wanted = {p.passage_id: _text_hash(p) for p in passages}
        stale = [pid for pid, entry in self._keys.items() if wanted.get(pid) != entry[1]]
        missing = [
            p
            for p in passages
            if self._keys.get(p.passage_id, [None, None])[1] != wanted[p.passage_id]
        ]
        if not stale and not missing:
            self._save(of)
            return 0
        for pid in stale:
            if self._index is not None:
                self._index.remove(int(self._keys[pid][0]))
            del self._keys[pid]
        if missing:
            # Imported here: only hybrid retrieval needs them, and commands import this module.
            import numpy
            from usearch.index import Index

            vectors = numpy.asarray(
                embedder.embed([_embedded_text(p) for p in missing]), dtype=numpy.float32
            )
            if self._index is None:
                self._index = Index(ndim=vectors.shape[1], metric="cos")
            next_key = max((int(entry[0]) for entry in self._keys.values()), default=0) + 1
            keys = numpy.arange(next_key, next_key + len(missing), dtype=numpy.uint64)
            self._index.add(keys, vectors)
            for key, passage in zip(keys, missing, strict=True):
                self._keys[passage.passage_id] = [int(key), wanted[passage.passage_id]]
        self._save(of)
        return len(missing)

    def _save(self, of: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            self._index.save(str(self.directory / "index.usearch"))
        temporary = self.directory / "keys.json.tmp"
        temporary.write_text(json.dumps({"model": self.model, "of": of, "keys": self._keys}))
        os.replace(temporary, self.directory / "keys.json")
        self._by_key = {int(entry[0]): pid for pid, entry in self._keys.items()}
        self._of = of

    def search(self, vector: Sequence[float], *, limit: int) -> list[str]:
        """Passage IDs nearest to `vector`, nearest first."""
        if self._index is None or not len(self._index) or limit <= 0:
            return []
        import numpy

        matches = self._index.search(numpy.asarray(vector, dtype=numpy.float32), limit)
        return [self._by_key[int(key)] for key in matches.keys if int(key) in self._by_key]


def _embedded_text(passage: IndexedPassage) -> str:
    # The title and heading say what a passage is about, as they do for the lexical index.
    return "\n".join(part for part in (passage.title, passage.heading, passage.text) if part)


def _text_hash(passage: IndexedPassage) -> str:
    return hashlib.sha256(_embedded_text(passage).encode()).hexdigest()[:16]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], *, k: int = 60
) -> list[tuple[str, float]]:
    """IDs by the sum of 1/(k + rank) over the rankings they appear in, ties by ID."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


@contextlib.contextmanager
def locked(directory: Path, *, shared: bool) -> Iterator[None]:
    """An `flock` on the index's lock file: exclusive for its writer, shared for readers.

    Like `fte.locks`, an flock dies with its holder, so a crashed writer leaves no stale lock.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "index.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_manifest(directory: Path, *, require: Path | None = None) -> dict[str, Any]:
    """The files the index holds; none if the index itself (`require`) is gone."""
    if require is not None and not (require / "meta.json").is_file():
        return {"files": {}}
    try:
        manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return {"files": {}}
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Written after the index commit, atomically: a crash in between only re-reads files."""
    temporary = directory / "manifest.json.tmp"
    temporary.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(temporary, directory / "manifest.json")
