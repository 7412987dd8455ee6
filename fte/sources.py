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
import io
import json
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import structlog
from selectolax.lexbor import LexborHTMLParser

from fte import corpus_index
from fte.contracts import Passage
from fte.corpus_index import IndexedPassage, PassageIndex, VectorIndex
from fte.embeddings import EMBEDDINGS_MODEL_ENV, Embedder, EmbeddingsError, embedder_from_env
from fte.errors import CorpusError

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf")
_MARKDOWN_SUFFIXES = (".md", ".markdown")
_HTML_SUFFIXES = (".html", ".htm")
_PDF_SUFFIXES = (".pdf",)
# How deep each ranking of a hybrid search goes before they are fused.
HYBRID_DEPTH = 50

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


class Section(NamedTuple):
    """A run of a document under one heading path (or one PDF page)."""

    heading: str
    page: int | None
    text: str


@dataclass(frozen=True)
class _Document:
    path: Path
    relative: str
    title: str
    sections: list[Section]
    description: str = ""


_FRONT_MATTER_END = ("---", "...")
_FRONT_MATTER_FIELD = re.compile(r"^(?P<key>title|description):\s*(?P<value>.*?)\s*$")
_ATX_H1 = re.compile(r"^#\s+(?P<title>.+?)(?:\s+#+)?\s*$")
_ATX_HEADING = re.compile(r"^(?P<marks>#{1,6})\s+(?P<text>.+?)(?:\s+#+)?\s*$")
_HTML_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt",
        "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "nav", "ol",
        "p", "pre", "section", "table", "td", "th", "tr", "ul",
    }
)  # fmt: skip
HEADING_SEPARATOR = " › "
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
    relative = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    if suffix in _PDF_SUFFIXES:
        title, sections = _pdf_sections(data)
        description = ""
    else:
        text = _utf8_text(data, path)
        title, description, sections = _text_sections(text, suffix)
    sections = [section for section in sections if section.text.strip()]
    if not sections:
        return None
    return _Document(
        path=path,
        relative=relative,
        title=title or path.stem,
        sections=sections,
        description=description,
    )


def _utf8_text(data: bytes, path: Path) -> str:
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
    return text.replace("\r\n", "\n").replace("\r", "\n")


def page_sections(text: str, content_type: str) -> tuple[str | None, list[Section]]:
    """(title, sections) of a fetched web page, read like a local file of its type; an HTML
    page's main content only (`_main_content`), not its menus, sidebars and footers."""
    suffix = {"text/html": ".html", "application/xhtml+xml": ".html", "text/markdown": ".md"}
    kind = suffix.get(content_type, ".txt")
    main = _main_content(text) if kind == ".html" else None
    if main is not None:
        title = _html_title(LexborHTMLParser(text)) or _markdown_title(main)
        sections = _markdown_sections(main, title)
    else:
        title, _, sections = _text_sections(text, kind)
    return title, [section for section in sections if section.text.strip()]


def _main_content(html: str) -> str | None:
    """The page's main text as Markdown (headings kept, links and images dropped), by
    trafilatura, which tells an article from the navigation, sidebars, cookie notices and
    footers around it; None if it finds none (the whole page is read then)."""
    # Imported on the first web page: ~0.1 s, and only web research needs it.
    import trafilatura

    main = trafilatura.extract(
        html,
        output_format="markdown",
        include_links=False,
        include_images=False,
        include_comments=False,
        include_tables=True,
        # A short page's one paragraph is its content, not boilerplate.
        favor_recall=True,
    )
    return main if main and main.strip() else None


def _text_sections(text: str, suffix: str) -> tuple[str | None, str, list[Section]]:
    """(title, description, sections) of a Markdown, HTML or plain-text document."""
    if suffix in _HTML_SUFFIXES:
        return _html_sections(text)
    if suffix in _MARKDOWN_SUFFIXES:
        fields, body = _split_front_matter(text)
        title = fields.get("title") or _markdown_title(body)
        return title, fields.get("description", ""), _markdown_sections(body, title)
    return None, "", [Section(heading="", page=None, text=text)]


def _markdown_sections(body: str, title: str | None) -> list[Section]:
    """The document cut at its ATX headings (outside code fences), each with its heading path.

    A section keeps its own heading line as its first paragraph, so the quoted text still
    shows where it stands; the path lists the enclosing headings, the title's H1 left out.
    """
    sections: list[Section] = []
    trail: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def close() -> None:
        if "".join(lines).strip():
            sections.append(Section(_heading_path(trail, title), None, "\n".join(lines).strip()))

    for line in body.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and (match := _ATX_HEADING.match(line)):
            # A heading with nothing under it yet is kept with the next section.
            if any(not _ATX_HEADING.match(kept) and kept.strip() for kept in lines):
                close()
                lines = []
            level = len(match["marks"])
            trail = [(lvl, text) for lvl, text in trail if lvl < level]
            trail.append((level, match["text"]))
        lines.append(line)
    close()
    return sections


def _heading_path(trail: Sequence[tuple[int, str]], title: str | None) -> str:
    names = [text for _, text in trail]
    if names and names[0] == title:
        names = names[1:]
    return HEADING_SEPARATOR.join(names)


def _html_sections(text: str) -> tuple[str | None, str, list[Section]]:
    """Visible text of an HTML page by selectolax (Lexbor), one paragraph per block element,
    cut into sections at h1-h6."""
    tree = LexborHTMLParser(text)
    tree.strip_tags(["script", "style", "template", "noscript"])
    title = _html_title(tree)
    first_h1: str | None = None
    sections: list[Section] = []
    trail: list[tuple[int, str]] = []
    paragraphs: list[str] = []
    current: list[str] = []

    def flush() -> None:
        # Inline tags split text into several nodes ("dur<b>able</b>"), so pieces are
        # joined without spaces and whitespace is collapsed only here.
        if paragraph := _collapse(current):
            paragraphs.append(paragraph)
        current.clear()

    def close() -> None:
        flush()
        if paragraphs:
            sections.append(
                Section(_heading_path(trail, title or first_h1), None, "\n\n".join(paragraphs))
            )
        paragraphs.clear()

    body = tree.body
    for node in body.traverse(include_text=True) if body is not None else ():
        tag = node.tag
        if tag == "-text":
            current.append(node.text_content or "")
        elif tag in _HTML_HEADINGS:
            heading = _collapse([node.text(deep=True, separator="")])
            if tag == "h1" and first_h1 is None:
                first_h1 = heading or None
            if heading:
                close()
                level = int(tag[1])
                trail = [(lvl, name) for lvl, name in trail if lvl < level]
                trail.append((level, heading))
        elif tag in _HTML_BLOCKS:
            flush()
    close()
    return title or first_h1, "", sections


def _html_title(tree: LexborHTMLParser) -> str:
    title_node = tree.css_first("title")
    return _collapse([title_node.text()]) if title_node is not None else ""


def _pdf_sections(data: bytes) -> tuple[str | None, list[Section]]:
    """One section per page of a PDF (pypdf), so each passage knows its page."""
    # Imported on the first PDF: pypdf takes ~50 ms to import, paid by every command that
    # validates or searches a corpus, and most corpora have no PDF.
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise _Refused("an encrypted PDF; decrypt it first")
        title = (reader.metadata.title if reader.metadata else None) or None
        sections = []
        for number, page in enumerate(reader.pages, 1):
            text = page.extract_text() or ""
            # PDF text comes with hard line breaks; blank lines still separate paragraphs.
            text = text.replace("\r\n", "\n").replace("\x00", "")
            sections.append(Section(heading="", page=number, text=text))
    except _Refused:
        raise
    except Exception as error:  # pypdf raises many types for a damaged file
        raise _Refused(f"not a readable PDF ({type(error).__name__}: {error})") from error
    return (str(title).strip() or None) if title else None, sections


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
    scan = Scan(files=[], refused=[])
    for _, full, status, reason in _scan_entries(root):
        if reason is None and status is not None:
            scan.files.append((Path(full), status))
        else:
            scan.refused.append(RefusedFile(Path(full), reason or "refused"))
    return scan


def _scan_entries(
    root: Path,
) -> Iterator[tuple[str, str, os.stat_result | None, str | None]]:
    """(relative POSIX path, path, status, refusal) of each supported file under `root`,
    hidden files and directories skipped, sorted by relative path.

    Plain strings, not `Path`s: every search checks its corpus's fingerprint, and pathlib's
    parsing was most of that cost (12 ms for the 454 Dapr documentation pages, 3 with
    strings), paid by every source finder of a fan-out in turn under the corpus cache lock.
    """
    base = str(root)
    candidates: list[tuple[str, str]] = []
    # Not following symlinked directories keeps the walk inside `root` and free of loops.
    for directory, subdirs, filenames in os.walk(base):
        subdirs[:] = [name for name in subdirs if not name.startswith(".")]
        relative_dir = os.path.relpath(directory, base)
        prefix = "" if relative_dir == "." else relative_dir.replace(os.sep, "/") + "/"
        candidates.extend(
            (prefix + name, os.path.join(directory, name))
            for name in filenames
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES
        )
    candidates.sort()
    for relative, full in candidates:
        own: os.stat_result | None
        try:
            own = os.lstat(full)
        except OSError:
            own = None
        status: os.stat_result | None
        if own is not None and not stat.S_ISLNK(own.st_mode):
            # The walk follows no symlinked directory, so a file that is no symlink itself
            # is inside `root` as named: no need to resolve it (the cost of re-opening a
            # large corpus is this loop).
            reason, status = _status_refusal(own), own
        else:
            reason, status = _refusal(Path(full), root)
        yield relative, full, status, reason


def corpus_fingerprint(root: Path) -> str:
    """A hash that changes when any supported file under `root` is added, removed or touched.

    It reads no file contents (paths, sizes and mtimes only), so it is cheap enough to
    key a cache with; include the chunking parameters in that key yourself.
    """
    root = _checked_root(root)
    digest = hashlib.sha256()
    refused: list[tuple[str, str]] = []
    for relative, _, status, reason in _scan_entries(root):
        if reason is None and status is not None:
            digest.update(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
        else:
            refused.append((relative, reason or "refused"))
    # The refusals after the files, as before: the same corpus keeps the same fingerprint.
    for relative, reason in refused:
        digest.update(f"{relative}\0refused\0{reason}\n".encode())
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


# --- The corpus and its index ----------------------------------------------------------------


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
    """Passages from a directory of documents, searched in its persistent index.

    `load` brings the index up to date with the files (reading only new and changed ones)
    and opens it; the passages stay on disk, so a large corpus costs a search, not memory.
    """

    name: str = "local"

    def __init__(
        self,
        index: PassageIndex,
        *,
        root: Path,
        refused: Sequence[RefusedFile] = (),
        vectors: tuple[VectorIndex, Embedder] | None = None,
    ):
        self.root = root
        self._index = index
        self._vectors = vectors
        self.refused: tuple[RefusedFile, ...] = tuple(refused)
        """Files under `root` that were not read, with the reason (also logged as warnings)."""

    @classmethod
    def load(
        cls,
        root: Path,
        *,
        chunk_chars: int = 1200,
        overlap_chars: int = 200,
        index_dir: Path | None = None,
        embedder: Embedder | None = None,
    ) -> LocalCorpus:
        """Update and open `root`'s index; raises `CorpusError` with the path at fault.

        With an `embedder`, passages without a current vector are embedded (once: vectors
        are kept beside the index) and searches fuse lexical and vector rankings.
        """
        if chunk_chars <= 0 or not 0 <= overlap_chars < chunk_chars:
            chunk_text("", chunk_chars=chunk_chars, overlap_chars=overlap_chars)  # raises
        root = _checked_root(root)
        scan = _scan(root)
        total = len(scan.files) + len(scan.refused)
        if not total:
            raise CorpusError(
                f"no supported files found under {root}; "
                f"add documents with one of: {', '.join(SUPPORTED_SUFFIXES)}",
                path=root,
            )
        directory = corpus_index.index_location(
            index_dir or corpus_index.default_index_dir(),
            root,
            chunk_chars=chunk_chars,
            overlap_chars=overlap_chars,
        )
        wanted = {
            path.relative_to(root).as_posix(): [status.st_size, status.st_mtime_ns]
            for path, status in scan.files
        }
        with corpus_index.locked(directory, shared=True):
            manifest = corpus_index.read_manifest(directory, require=directory / "tantivy")
            if _up_to_date(manifest, wanted):
                index = PassageIndex(directory / "tantivy")
        if not _up_to_date(manifest, wanted):
            with corpus_index.locked(directory, shared=False):
                manifest = _update(directory, root, wanted, chunk_chars, overlap_chars)
                index = PassageIndex(directory / "tantivy")
        refused = list(scan.refused) + [
            RefusedFile(root / relative, entry[2])
            for relative, entry in manifest["files"].items()
            if len(entry) > 2
        ]
        refused.sort(key=lambda item: item.path.relative_to(root).as_posix())
        for item in refused:
            log.warning(
                "corpus file refused", path=str(item.path), reason=item.reason, corpus=str(root)
            )
        if not index.num_docs:
            raise _nothing_to_read(root, total, refused)
        vectors = None
        if embedder is not None:
            of = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
            with corpus_index.locked(directory, shared=False):
                vector_index = VectorIndex(directory, embedder.model)
                embedded = vector_index.sync(index, embedder, of=of)
            if embedded:
                log.info("corpus passages embedded", corpus=str(root), passages=embedded)
            vectors = (vector_index, embedder)
        return cls(index, root=root, refused=refused, vectors=vectors)

    def __len__(self) -> int:
        return self._index.num_docs

    @property
    def passages(self) -> list[Passage]:
        """Every passage, in file and chunk order (reads the whole index: for tests and evals)."""
        assert self.root is not None
        return [self._as_passage(p, 0.0) for p in self._index.all()]

    def search(self, query: str, *, limit: int) -> list[Passage]:
        """Top `limit` passages with a positive BM25 score, ties broken by passage ID."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if self._vectors is not None and limit:
            return self._hybrid_search(query, limit=limit)
        return [
            self._as_passage(passage, score)
            for score, passage in self._index.search(query, limit=limit)
            if score > 0.0
        ]

    def _hybrid_search(self, query: str, *, limit: int) -> list[Passage]:
        """Lexical and vector rankings fused by reciprocal rank (scores are not comparable)."""
        assert self._vectors is not None
        vectors, embedder = self._vectors
        depth = max(limit, HYBRID_DEPTH)
        lexical = [(s, p) for s, p in self._index.search(query, limit=depth) if s > 0.0]
        try:
            (query_vector,) = embedder.embed([query])
        except EmbeddingsError as error:
            if not error.transient:
                raise
            # A server that is down for a moment costs this search its vector half only.
            log.warning("embeddings unavailable, lexical search only", reason=str(error))
            return [self._as_passage(p, s) for s, p in lexical[:limit]]
        nearest = vectors.search(query_vector, limit=depth)
        fused = corpus_index.reciprocal_rank_fusion([[p.passage_id for _, p in lexical], nearest])[
            :limit
        ]
        known = {p.passage_id: p for _, p in lexical}
        known |= self._index.get([pid for pid, _ in fused if pid not in known])
        return [self._as_passage(known[pid], score) for pid, score in fused if pid in known]

    def _as_passage(self, passage: IndexedPassage, score: float) -> Passage:
        return Passage(
            passage_id=passage.passage_id,
            title=passage.title,
            location=str(self.root / passage.path),
            section=passage.heading,
            page=passage.page,
            text=passage.text,
            score=score,
        )


def _up_to_date(manifest: Mapping[str, object], wanted: Mapping[str, list[int]]) -> bool:
    files = manifest.get("files")
    if not isinstance(files, dict) or files.keys() != wanted.keys():
        return False
    return all(entry[:2] == wanted[relative] for relative, entry in files.items())


def _update(
    directory: Path,
    root: Path,
    wanted: Mapping[str, list[int]],
    chunk_chars: int,
    overlap_chars: int,
) -> dict[str, Any]:
    """Re-read the new and changed files, drop the removed ones; commit, then the manifest."""
    # Read again under the writer's lock: another process may have done the update.
    manifest = corpus_index.read_manifest(directory, require=directory / "tantivy")
    files: dict[str, list[Any]] = {
        relative: entry
        for relative, entry in manifest.get("files", {}).items()
        if relative in wanted and entry[:2] == wanted[relative]
    }
    gone = set(manifest.get("files", {})) - set(wanted)
    changed = [relative for relative in wanted if relative not in files]
    if not gone and not changed:
        return manifest
    index = PassageIndex(directory / "tantivy")
    with index.writing() as writer:
        for relative in gone:
            writer.remove(relative)
        for relative in changed:
            writer.remove(relative)
            path = root / relative
            try:
                document = _read_document(path, root)
            except _Refused as refusal:
                files[relative] = [*wanted[relative], str(refusal)]
                continue
            files[relative] = list(wanted[relative])
            if document is None:
                continue
            writer.add(_indexed(document, chunk_chars, overlap_chars), about=document.description)
    manifest = {"version": corpus_index.INDEX_VERSION, "root": str(root), "files": files}
    corpus_index.write_manifest(directory, manifest)
    log.info("corpus index updated", corpus=str(root), read=len(changed), removed=len(gone))
    return manifest


def _indexed(document: _Document, chunk_chars: int, overlap_chars: int) -> Iterator[IndexedPassage]:
    ordinal = 0
    for section in document.sections:
        for chunk in chunk_text(section.text, chunk_chars=chunk_chars, overlap_chars=overlap_chars):
            yield IndexedPassage(
                passage_id=passage_id(document.relative, ordinal),
                path=document.relative,
                ordinal=ordinal,
                title=document.title,
                heading=section.heading,
                page=section.page,
                text=chunk,
            )
            ordinal += 1


_cache_lock = threading.Lock()


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, fingerprint: str, index_dir: Path, embeddings: str) -> LocalCorpus:
    return LocalCorpus.load(Path(path), index_dir=index_dir, embedder=embedder_from_env())


def cached_corpus(corpus_dir: str | Path) -> LocalCorpus:
    """Load a corpus once per process; a changed file changes the fingerprint and reloads it.

    The command that checks a corpus before starting a run and the activities of that run
    in the same process share one load (and one report of the files it refused).
    """
    root = Path(corpus_dir).resolve()
    with _cache_lock:
        return _load_cached(
            str(root),
            corpus_fingerprint(root),
            corpus_index.default_index_dir(),
            os.environ.get(EMBEDDINGS_MODEL_ENV, "").strip(),
        )
