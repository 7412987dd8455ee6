"""Where research passages come from: the `SourceProvider` protocol and a local corpus.

`LocalCorpus` reads a directory of Markdown, plain-text and HTML files, cuts each
document into overlapping paragraph-aligned chunks and ranks them with Okapi BM25.
It is all in memory and all deterministic: the same files give the same passage
IDs, the same scores and the same order, so a replayed activity or a cached run
sees exactly what the first run saw.

Only files inside the corpus directory are read: a symlink whose target resolves outside
it (`leak.txt -> /etc/passwd`), a broken symlink, anything that is not a regular file and
anything over `MAX_DOCUMENT_BYTES` is refused, logged with the reason and listed in
`LocalCorpus.refused`. The check is made once when the directory is scanned and again on
the opened file, so a file swapped for a symlink in between is refused too. Symlinked
directories are not followed.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import re
import stat
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import NamedTuple, Protocol

import structlog

from fte.contracts import Passage
from fte.errors import CorpusError
from fte.text import tokenize

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm")
_MARKDOWN_SUFFIXES = (".md", ".markdown")
_HTML_SUFFIXES = (".html", ".htm")

BM25_K1 = 1.5
BM25_B = 0.75
PASSAGE_ID_CHARS = 12
# Bigger files are refused rather than read whole into memory. Size alone is no problem
# below this: documents are cut into passages of at most `chunk_chars` characters.
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

log = structlog.get_logger(__name__)


class SourceProvider(Protocol):
    """Anything the researcher can search: a local corpus now, web search later."""

    name: str

    def search(self, query: str, *, limit: int) -> list[Passage]:
        """Return at most `limit` passages, best first; an empty list when nothing matches."""
        ...


# --- Reading documents -------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    path: Path
    relative: str
    title: str
    body: str
    description: str = ""


_FRONT_MATTER_END = ("---", "...")
_FRONT_MATTER_FIELD = re.compile(r"^(?P<key>title|description):\s*(?P<value>.*?)\s*$")
_ATX_H1 = re.compile(r"^#\s+(?P<title>.+?)(?:\s+#+)?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Return (`title:` and `description:` from YAML front matter, the text without it)."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        return {}, text
    end = next(
        (index for index, line in enumerate(lines[1:], 1) if line.strip() in _FRONT_MATTER_END),
        None,
    )
    if end is None:
        # An opening `---` with no closing line is a thematic break, not front matter.
        return {}, text
    fields: dict[str, str] = {}
    for line in lines[1:end]:
        match = _FRONT_MATTER_FIELD.match(line)
        value = match["value"].strip("\"'").strip() if match else ""
        # `title: >` or `title: |` start a YAML block scalar; not worth a YAML parser.
        if match and value and value not in (">", "|"):
            fields.setdefault(match["key"], value)
    return fields, "\n".join(lines[end + 1 :])


def _markdown_title(body: str) -> str | None:
    in_fence = False
    for line in body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _ATX_H1.match(line)):
            return match["title"]
    return None


class _HtmlText(HTMLParser):
    """Visible text of an HTML page, one paragraph per block element."""

    # <head> is not listed: its end tag is optional, and its only text is <title>.
    _HIDDEN = frozenset({"script", "style", "template"})
    _BLOCKS = frozenset(
        {
            "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
            "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
            "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
            "td", "th", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.first_h1: str | None = None
        self.paragraphs: list[str] = []
        self._hidden_depth = 0
        self._current: list[str] = []
        self._title_parts: list[str] | None = None
        self._h1_parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None:
            self._title_parts = []
        elif tag in self._HIDDEN:
            self._hidden_depth += 1
        elif tag in self._BLOCKS:
            self._flush()
        if tag == "h1" and self.first_h1 is None:
            self._h1_parts = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title_parts is not None:
            self.title = _collapse(self._title_parts) or None
            self._title_parts = None
        elif tag in self._HIDDEN:
            self._hidden_depth = max(0, self._hidden_depth - 1)
        elif tag in self._BLOCKS:
            self._flush()
        if tag == "h1" and self._h1_parts is not None:
            self.first_h1 = _collapse(self._h1_parts) or None
            self._h1_parts = None

    def handle_data(self, data: str) -> None:
        if self._title_parts is not None:
            self._title_parts.append(data)
        elif self._hidden_depth == 0:
            self._current.append(data)
            if self._h1_parts is not None:
                self._h1_parts.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        # Inline tags split text into several data events ("dur<b>able</b>"), so
        # pieces are joined without spaces and whitespace is collapsed only here.
        if paragraph := _collapse(self._current):
            self.paragraphs.append(paragraph)
        self._current = []


def _collapse(parts: Iterable[str]) -> str:
    return " ".join("".join(parts).split())


def _read_confined(path: Path, root: Path) -> bytes:
    """The file's bytes, if the file actually opened is a regular file inside `root`.

    Checked on the open descriptor, not the name: the name may have been swapped for a
    symlink since the scan.
    """
    # O_NONBLOCK: opening a FIFO that slipped in must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        try:
            opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:  # no /proc: the name is the best evidence left
            opened = path.resolve()
        if not opened.is_relative_to(root):
            raise _Refused(f"resolves to {opened}, outside the corpus directory {root}")
        reason = _status_refusal(os.fstat(fd))
        if reason is not None:
            raise _Refused(reason)
        return handle.read(MAX_DOCUMENT_BYTES + 1)


def _read_document(path: Path, root: Path) -> _Document | None:
    """Parse one file; None when it holds no text (empty files are skipped, not errors)."""
    try:
        data = _read_confined(path, root)
    except OSError as error:
        raise CorpusError(
            f"cannot read corpus file {path}: {error.strerror}; fix its permissions or remove it",
            path=path,
        ) from error
    if len(data) > MAX_DOCUMENT_BYTES:  # it grew after it was examined
        raise _Refused(_too_large(len(data)))
    try:
        # A NUL byte never occurs in UTF-8 text but does in binaries and UTF-16 files.
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), len(data), "NUL byte")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CorpusError(
            f"corpus file {path} is binary or not UTF-8 text; remove it or convert it to UTF-8",
            path=path,
        ) from error
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    suffix = path.suffix.lower()
    title: str | None
    description = ""
    if suffix in _HTML_SUFFIXES:
        parser = _HtmlText()
        parser.feed(text)
        parser.close()
        title = parser.title or parser.first_h1
        body = "\n\n".join(parser.paragraphs)
    elif suffix in _MARKDOWN_SUFFIXES:
        fields, body = _split_front_matter(text)
        title = fields.get("title") or _markdown_title(body)
        description = fields.get("description", "")
    else:
        title, body = None, text
    if not body.strip():
        return None
    relative = path.relative_to(root).as_posix()
    return _Document(
        path=path, relative=relative, title=title or path.stem, body=body, description=description
    )


def _checked_root(root: Path) -> Path:
    if not root.exists():
        raise CorpusError(
            f"corpus directory {root} does not exist; pass an existing directory of documents",
            path=root,
        )
    if not root.is_dir():
        raise CorpusError(
            f"corpus path {root} is not a directory; pass the directory that holds the documents",
            path=root,
        )
    return root.resolve()


@dataclass(frozen=True)
class RefusedFile:
    """A file under the corpus directory that was not read, and why."""

    path: Path
    reason: str


class _Refused(Exception):
    """Raised while reading a file that turned out not to be confined after all."""


class Scan(NamedTuple):
    """The supported files under a corpus root: those to read, with their status, and refusals."""

    files: list[tuple[Path, os.stat_result]]
    refused: list[RefusedFile]


def _refusal(path: Path, root: Path) -> tuple[str | None, os.stat_result | None]:
    """Why `path` must not be read (None if it may be), and its target's status if it may."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python 3.11)
        return "a broken symlink or a symlink loop", None
    if not target.is_relative_to(root):
        return f"resolves to {target}, outside the corpus directory {root}", None
    try:
        status = target.stat()
    except OSError as error:
        return f"cannot be examined ({error.strerror})", None
    return _status_refusal(status), status


def _status_refusal(status: os.stat_result) -> str | None:
    if not stat.S_ISREG(status.st_mode):
        return "not a regular file (a device, pipe or socket)"
    if status.st_size > MAX_DOCUMENT_BYTES:
        return _too_large(status.st_size)
    return None


def _too_large(size: int) -> str:
    limit = f"{MAX_DOCUMENT_BYTES / (1024 * 1024):g} MiB"
    return f"larger than {limit} ({size:,} bytes or more); split it into smaller documents"


def _scan(root: Path) -> Scan:
    """Supported files under `root`, hidden files and directories skipped, in a stable order."""
    candidates: list[Path] = []
    # Not following symlinked directories keeps the walk inside `root` and free of loops.
    for directory, subdirs, filenames in os.walk(root):
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
        candidates.extend(
            Path(directory, name)
            for name in filenames
            if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        )
    candidates.sort(key=lambda path: path.relative_to(root).as_posix())
    scan = Scan(files=[], refused=[])
    for path in candidates:
        reason, status = _refusal(path, root)
        if reason is None and status is not None:
            scan.files.append((path, status))
        else:
            scan.refused.append(RefusedFile(path, reason or "refused"))
    return scan


def corpus_fingerprint(root: Path) -> str:
    """A hash that changes when any supported file under `root` is added, removed or touched.

    It reads no file contents (paths, sizes and mtimes only), so it is cheap enough to
    key a cache with; include the chunking parameters in that key yourself.
    """
    root = _checked_root(root)
    digest = hashlib.sha256()
    scan = _scan(root)
    for path, status in scan.files:
        relative = path.relative_to(root).as_posix()
        digest.update(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    for refused in scan.refused:
        relative = refused.path.relative_to(root).as_posix()
        digest.update(f"{relative}\0refused\0{refused.reason}\n".encode())
    return digest.hexdigest()


# --- Chunking ----------------------------------------------------------------------

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_WORD_WITH_SPACE = re.compile(r"\S+\s*")


def _split_paragraph(paragraph: str, max_chars: int) -> list[str]:
    """Cut an over-long paragraph at whitespace into pieces of at most `max_chars`.

    A "word" longer than `max_chars` (a minified line, a base64 blob) is cut at the
    bound: the size bound is what keeps every passage, search result and prompt small,
    whatever a file holds.
    """
    if len(paragraph) <= max_chars:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for word in _words_at_most(paragraph, max_chars):
        if current and len(current) + len(word.rstrip()) > max_chars:
            pieces.append(current.rstrip())
            current = ""
        current += word
    if current.strip():
        pieces.append(current.rstrip())
    return pieces


def _words_at_most(text: str, max_chars: int) -> Iterator[str]:
    """The words of `text` with their trailing whitespace, over-long words cut to size."""
    for word in _WORD_WITH_SPACE.findall(text):
        if len(word.rstrip()) <= max_chars:
            yield word
            continue
        for start in range(0, len(word), max_chars):
            yield word[start : start + max_chars]


def _word_tail(text: str, max_chars: int) -> str:
    """The longest run of whole words at the end of `text` that fits in `max_chars`."""
    if max_chars <= 0:
        return ""
    if len(text) <= max_chars:
        return text.strip()
    tail = text[-max_chars:]
    if not text[-max_chars - 1].isspace():
        # The cut landed inside a word: drop that partial word.
        first_space = re.search(r"\s", tail)
        tail = tail[first_space.end() :] if first_space else ""
    return tail.strip()


def chunk_text(text: str, *, chunk_chars: int, overlap_chars: int) -> list[str]:
    """Pack paragraphs into chunks of at most `chunk_chars`, each starting with a short tail
    (at most `overlap_chars`, whole words) of the chunk before it.

    The overlap keeps a sentence that straddles a chunk boundary findable from both
    sides; paragraphs are kept whole where they fit because they are the unit of meaning.
    """
    if chunk_chars <= 0 or not 0 <= overlap_chars < chunk_chars:
        raise ValueError(
            f"need chunk_chars > 0 and 0 <= overlap_chars < chunk_chars, "
            f"got chunk_chars={chunk_chars}, overlap_chars={overlap_chars}"
        )
    paragraphs = [paragraph.strip() for paragraph in _PARAGRAPH_BREAK.split(text)]
    pieces = [
        piece
        for paragraph in paragraphs
        if paragraph
        for piece in _split_paragraph(paragraph, chunk_chars - overlap_chars)
    ]
    chunks: list[str] = []
    current: list[str] = []
    for piece in pieces:
        joined = "\n\n".join([*current, piece])
        if current and len(joined) > chunk_chars:
            chunks.append("\n\n".join(current))
            # Shrink the overlap if needed so the new chunk still fits the bound.
            tail = _word_tail(chunks[-1], min(overlap_chars, chunk_chars - len(piece) - 2))
            current = [tail] if tail else []
        current.append(piece)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def passage_id(relative_path: str, index: int) -> str:
    """Stable chunk ID: the same file and chunk position always give the same ID."""
    digest = hashlib.sha1(f"{relative_path}\0{index}".encode(), usedforsecurity=False)
    return digest.hexdigest()[:PASSAGE_ID_CHARS]


# --- Lexical search ----------------------------------------------------------------


def _nothing_to_read(root: Path, total: int, refused: Sequence[RefusedFile]) -> CorpusError:
    if not refused:
        message = (
            f"empty corpus: all {total} supported files under {root} are empty; "
            "add text to them or point at another directory"
        )
    else:
        first = refused[0]
        message = (
            f"empty corpus: of {total} supported files under {root}, {len(refused)} refused "
            f"(e.g. {first.path.name}: {first.reason}) and the rest are empty; "
            "put readable documents inside the directory"
        )
    return CorpusError(message, path=root)


class LocalCorpus:
    """Passages from a directory of documents, searched with Okapi BM25 in memory."""

    name: str = "local"

    def __init__(
        self,
        passages: Sequence[Passage],
        *,
        root: Path | None = None,
        refused: Sequence[RefusedFile] = (),
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.passages: tuple[Passage, ...] = tuple(passages)
        self.refused: tuple[RefusedFile, ...] = tuple(refused)
        """Files under `root` that were not read, with the reason (also logged as warnings)."""
        self._lengths: list[int] = []
        self._postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for index, passage in enumerate(self.passages):
            # Chunks after the first lose the document heading, so the title and the page's
            # own summary (its front-matter description) are indexed with every chunk to
            # keep them findable by topic (Dapr docs: hit@3 0.75 -> 0.82 in `fte eval`).
            about = (descriptions or {}).get(passage.location, "")
            counts = Counter(tokenize(f"{passage.title}\n{about}\n{passage.text}"))
            self._lengths.append(sum(counts.values()))
            for term, count in counts.items():
                self._postings[term].append((index, count))
        self._average_length = sum(self._lengths) / len(self._lengths) if self._lengths else 0.0

    @classmethod
    def load(cls, root: Path, *, chunk_chars: int = 1200, overlap_chars: int = 200) -> LocalCorpus:
        """Read every supported file under `root`; raises `CorpusError` with the path at fault."""
        root = _checked_root(root)
        scan = _scan(root)
        total = len(scan.files) + len(scan.refused)
        if not total:
            raise CorpusError(
                f"no supported files found under {root}; "
                f"add documents with one of: {', '.join(SUPPORTED_SUFFIXES)}",
                path=root,
            )
        refused = list(scan.refused)
        passages: list[Passage] = []
        descriptions: dict[str, str] = {}
        for path, _ in scan.files:
            try:
                document = _read_document(path, root)
            except _Refused as refusal:
                refused.append(RefusedFile(path, str(refusal)))
                continue
            if document is None:
                continue
            chunks = chunk_text(document.body, chunk_chars=chunk_chars, overlap_chars=overlap_chars)
            if document.description:
                descriptions[str(document.path)] = document.description
            passages.extend(
                Passage(
                    passage_id=passage_id(document.relative, index),
                    title=document.title,
                    location=str(document.path),
                    text=chunk,
                )
                for index, chunk in enumerate(chunks)
            )
        refused.sort(key=lambda item: item.path.relative_to(root).as_posix())
        for item in refused:
            log.warning(
                "corpus file refused", path=str(item.path), reason=item.reason, corpus=str(root)
            )
        if not passages:
            raise _nothing_to_read(root, total, refused)
        return cls(passages, root=root, refused=refused, descriptions=descriptions)

    def __len__(self) -> int:
        return len(self.passages)

    def search(self, query: str, *, limit: int) -> list[Passage]:
        """Top `limit` passages with a positive BM25 score, ties broken by passage ID."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        scores: defaultdict[int, float] = defaultdict(float)
        total = len(self.passages)
        # Unique terms in query order: a repeated word should not count twice, and a
        # fixed summation order keeps float scores bit-identical between runs.
        for term in dict.fromkeys(tokenize(query)):
            postings = self._postings.get(term, [])
            if not postings:
                continue
            # The "+ 1" (as in Lucene) keeps the IDF positive for terms in most passages.
            idf = math.log((total - len(postings) + 0.5) / (len(postings) + 0.5) + 1.0)
            for index, frequency in postings:
                norm = 1.0 - BM25_B + BM25_B * self._lengths[index] / self._average_length
                scores[index] += idf * frequency * (BM25_K1 + 1.0) / (frequency + BM25_K1 * norm)
        ranked = sorted(
            (index for index, score in scores.items() if score > 0.0),
            key=lambda index: (-scores[index], self.passages[index].passage_id),
        )
        return [
            self.passages[index].model_copy(update={"score": scores[index]})
            for index in ranked[:limit]
        ]


_cache_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, fingerprint: str) -> LocalCorpus:
    return LocalCorpus.load(Path(path))


def cached_corpus(corpus_dir: str | Path) -> LocalCorpus:
    """Load a corpus once per process; a changed file changes the fingerprint and reloads it.

    The command that checks a corpus before starting a run and the activities of that run
    in the same process share one load (and one report of the files it refused).
    """
    root = Path(corpus_dir).resolve()
    with _cache_lock:
        return _load_cached(str(root), corpus_fingerprint(root))
