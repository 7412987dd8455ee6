"""LocalCorpus: parsing, chunking, BM25 ranking, stable IDs and actionable load errors."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from fte import sources
from fte.contracts import Passage
from fte.errors import CorpusError, UsageError
from fte.sources import (
    SUPPORTED_SUFFIXES,
    LocalCorpus,
    SourceProvider,
    chunk_text,
    corpus_fingerprint,
    passage_id,
)
from fte.text import tokenize
from tests.support.documents import make_pdf, write

EXAMPLE_CORPUS = Path(__file__).resolve().parents[2] / "examples" / "corpus"


def load_one(root: Path, relative: str, content: str) -> Passage:
    """Load a corpus holding a single small file and return its only passage."""
    write(root, relative, content)
    corpus = LocalCorpus.load(root)
    assert len(corpus.passages) == 1
    return corpus.passages[0]


# --- Parsing -----------------------------------------------------------------------


def test_markdown_title_is_the_first_h1_outside_code_fences(tmp_path: Path) -> None:
    text = "Intro line.\n\n```bash\n# not a title\n```\n\n## Sub\n\n# Real Title #\n\nBody text."
    write(tmp_path, "doc.md", text)
    intro, body = LocalCorpus.load(tmp_path).passages
    assert intro.title == body.title == "Real Title"
    # A heading with nothing under it stays with the next one; the fenced "#" is no heading.
    assert intro.text == "Intro line.\n\n```bash\n# not a title\n```"
    assert body.text == "## Sub\n\n# Real Title #\n\nBody text."


def test_markdown_without_heading_is_titled_by_file_stem(tmp_path: Path) -> None:
    passage = load_one(tmp_path, "notes-on-retries.markdown", "Just some notes.\n")
    assert passage.title == "notes-on-retries"


def test_front_matter_title_wins_and_front_matter_is_stripped(tmp_path: Path) -> None:
    text = '---\nauthor: someone\ntitle: "From Front Matter"\n---\n# Heading\n\nBody text.\n'
    passage = load_one(tmp_path, "doc.md", text)
    assert passage.title == "From Front Matter"
    assert "author" not in passage.text
    assert passage.text.startswith("# Heading")


def test_front_matter_without_title_falls_back_to_heading(tmp_path: Path) -> None:
    passage = load_one(tmp_path, "doc.md", "---\ntags: [a, b]\n---\n\n# Heading\n\nBody.\n")
    assert passage.title == "Heading"
    assert "tags" not in passage.text


def test_unclosed_front_matter_is_kept_as_text(tmp_path: Path) -> None:
    passage = load_one(tmp_path, "doc.md", "---\ntitle: not front matter\n")
    assert passage.title == "doc"
    assert "title: not front matter" in passage.text


def test_text_file_keeps_its_text_and_is_titled_by_stem(tmp_path: Path) -> None:
    passage = load_one(tmp_path, "dead-letters.txt", "\ufeffFirst paragraph.\r\n\r\nSecond.\r\n")
    assert passage.title == "dead-letters"
    assert passage.text == "First paragraph.\n\nSecond."


def test_html_keeps_visible_text_and_title_and_drops_script_and_style(tmp_path: Path) -> None:
    html = """<!DOCTYPE html><html><head><title> Sagas &amp; Compensation </title>
    <style>body { color: red; }</style><script>var secret = "hidden";</script></head>
    <body><h1>Heading</h1><p>Dur<b>able</b> workflows&nbsp;retry.</p>
    <ul><li>one</li><li>two</li></ul><script>track("x");</script></body></html>"""
    passage = load_one(tmp_path, "page.html", html)
    assert passage.title == "Sagas & Compensation"
    # &nbsp; is collapsed like any other whitespace.
    assert passage.text == "Heading\n\nDurable workflows retry.\n\none\n\ntwo"


def test_html_without_title_uses_h1_and_tolerates_missing_end_tags(tmp_path: Path) -> None:
    passage = load_one(tmp_path, "page.htm", "<html><head><body><h1>Timers</h1><p>Fire later.")
    assert passage.title == "Timers"
    assert passage.text == "Timers\n\nFire later."


def test_only_supported_files_outside_hidden_paths_are_read(tmp_path: Path) -> None:
    for suffix in SUPPORTED_SUFFIXES:
        text = f"<p>text {suffix}</p>"
        write(tmp_path, f"sub/doc{suffix.upper()}", make_pdf([text]) if suffix == ".pdf" else text)
    write(tmp_path, "notes.rst", "Not read")
    write(tmp_path, ".git/HEAD.md", "hidden directory")
    write(tmp_path, ".draft.md", "hidden file")
    corpus = LocalCorpus.load(tmp_path)
    names = sorted(Path(passage.location).name for passage in corpus.passages)
    assert names == sorted(f"doc{suffix.upper()}" for suffix in SUPPORTED_SUFFIXES)


# --- Chunking ----------------------------------------------------------------------


def numbered_paragraphs(sizes: list[int]) -> str:
    """Paragraphs of unique words (w0000, w0001, ...) so any split word would show."""
    words = iter(f"w{number:04d}" for number in range(10_000))
    return "\n\n".join(" ".join(next(words) for _ in range(size)) for size in sizes)


def test_chunks_are_bounded_whole_word_and_overlapping() -> None:
    text = numbered_paragraphs([5, 30, 12, 80, 3, 25, 40, 7])
    source_words = text.split()
    chunks = chunk_text(text, chunk_chars=200, overlap_chars=50)

    assert len(chunks) > 3
    assert all(len(chunk) <= 200 for chunk in chunks)
    assert all(set(chunk.split()) <= set(source_words) for chunk in chunks)
    assert {word for chunk in chunks for word in chunk.split()} == set(source_words)
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        # Each chunk opens with the last few words of the one before it.
        before, after = previous.split(), chunk.split()
        shared = max(k for k in range(len(before)) if before[len(before) - k :] == after[:k])
        assert 0 < len(" ".join(after[:shared])) <= 50


def test_chunks_keep_paragraphs_whole_when_they_fit() -> None:
    chunks = chunk_text(
        "alpha beta\n\ngamma delta\n\n\nepsilon", chunk_chars=1200, overlap_chars=200
    )
    assert chunks == ["alpha beta\n\ngamma delta\n\nepsilon"]


def test_word_longer_than_a_chunk_is_cut_at_the_bound() -> None:
    long_word = "x" * 50
    chunks = chunk_text(f"short words here {long_word} and more", chunk_chars=20, overlap_chars=5)
    assert all(len(chunk) <= 20 for chunk in chunks)
    assert "".join(word for chunk in chunks for word in chunk.split() if "x" in word) == long_word
    assert chunks[0].split()[:3] == ["short", "words", "here"]
    assert chunks[-1].split()[-2:] == ["and", "more"]


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("durable,workflow,retry;" * 230_000, id="no-whitespace"),
        pytest.param("durable workflows retry activities " * 150_000, id="one-long-line"),
    ],
)
def test_five_megabyte_one_line_file_becomes_bounded_passages(tmp_path: Path, line: str) -> None:
    """One line of 5 MB once became one 5 MB passage, over the engine's 4 MB message limit."""
    assert len(line) > 5_000_000
    write(tmp_path, "huge.txt", line)
    corpus = LocalCorpus.load(tmp_path)
    assert len(corpus) > 4000
    assert max(len(passage.text) for passage in corpus.passages) <= 1200
    results = corpus.search("durable workflow retry", limit=8)
    assert len(results) == 8 and all(len(passage.text) <= 1200 for passage in results)


@pytest.mark.parametrize(
    ("chunk_chars", "overlap_chars"),
    [(0, 0), (100, 100), (100, -1)],
    ids=["zero-chunk", "overlap-equals-chunk", "negative-overlap"],
)
def test_chunk_parameters_are_validated(chunk_chars: int, overlap_chars: int) -> None:
    with pytest.raises(ValueError, match="overlap_chars"):
        chunk_text("text", chunk_chars=chunk_chars, overlap_chars=overlap_chars)


def test_load_splits_long_documents_into_passages_of_that_file(tmp_path: Path) -> None:
    path = write(tmp_path, "long.md", "# Long\n\n" + numbered_paragraphs([40] * 10))
    corpus = LocalCorpus.load(tmp_path, chunk_chars=300, overlap_chars=60)
    assert len(corpus) > 5
    assert {passage.location for passage in corpus.passages} == {str(path.resolve())}
    assert {passage.title for passage in corpus.passages} == {"Long"}
    assert all(len(passage.text) <= 300 for passage in corpus.passages)


# --- Stable passage IDs ------------------------------------------------------------


def test_passage_ids_are_stable_unique_and_independent_of_the_root(tmp_path: Path) -> None:
    first_root = tmp_path / "one"
    write(first_root, "a.md", "# A\n\n" + numbered_paragraphs([40] * 6))
    write(first_root, "nested/b.txt", "Some text about timers.")
    second_root = tmp_path / "two"
    shutil.copytree(first_root, second_root)

    first = LocalCorpus.load(first_root, chunk_chars=300, overlap_chars=60)
    again = LocalCorpus.load(first_root, chunk_chars=300, overlap_chars=60)
    moved = LocalCorpus.load(second_root, chunk_chars=300, overlap_chars=60)

    ids = [passage.passage_id for passage in first.passages]
    assert ids == [passage.passage_id for passage in again.passages]
    assert ids == [passage.passage_id for passage in moved.passages]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{12}", passage_id_) for passage_id_ in ids)
    assert ids[0] == passage_id("a.md", 0)
    assert ids[-1] == passage_id("nested/b.txt", 0)


# --- BM25 search -------------------------------------------------------------------


@pytest.fixture
def small_corpus(tmp_path: Path) -> LocalCorpus:
    write(tmp_path, "saga.md", "# Sagas\n\nA saga runs compensation steps in reverse order.")
    write(tmp_path, "timers.md", "# Timers\n\nDurable timers fire after a delay, never before.")
    write(tmp_path, "retries.txt", "Retry policies use exponential backoff with jitter.")
    write(tmp_path, "actors.html", "<title>Actors</title><p>Actors process one message.</p>")
    return LocalCorpus.load(tmp_path)


def test_local_corpus_is_a_source_provider(small_corpus: LocalCorpus) -> None:
    provider: SourceProvider = small_corpus
    assert provider.name == "local"


def test_search_ranks_the_relevant_document_first(small_corpus: LocalCorpus) -> None:
    results = small_corpus.search("saga compensation order", limit=10)
    assert Path(results[0].location).name == "saga.md"
    assert results[0].score > 0
    assert [result.score for result in results] == sorted(
        (result.score for result in results), reverse=True
    )


def test_search_folds_plurals(small_corpus: LocalCorpus) -> None:
    assert tokenize("Retries policies sagas") == tokenize("retry policy saga")
    assert Path(small_corpus.search("retries", limit=1)[0].location).name == "retries.txt"


def test_search_returns_only_positive_scores(small_corpus: LocalCorpus) -> None:
    assert small_corpus.search("kubernetes", limit=5) == []
    assert small_corpus.search("the and of", limit=5) == []
    assert small_corpus.search("", limit=5) == []


def test_search_respects_limit_and_leaves_the_corpus_unscored(small_corpus: LocalCorpus) -> None:
    assert len(small_corpus.search("durable saga actors retry", limit=2)) == 2
    assert small_corpus.search("saga", limit=0) == []
    assert all(passage.score == 0.0 for passage in small_corpus.passages)
    with pytest.raises(ValueError, match="limit"):
        small_corpus.search("saga", limit=-1)


def test_equal_scores_are_ordered_by_passage_id(tmp_path: Path) -> None:
    names = ("gamma.txt", "alpha.txt", "beta.txt", "delta.txt")
    for name in names:
        write(tmp_path, name, "Idempotency keys make retries safe.")
    write(tmp_path, "other.txt", "Something unrelated entirely.")
    corpus = LocalCorpus.load(tmp_path)

    results = corpus.search("idempotency keys", limit=10)
    assert len(results) == 4
    assert len({result.score for result in results}) == 1
    assert [result.passage_id for result in results] == sorted(
        passage_id(name, 0) for name in names
    )
    assert corpus.search("idempotency keys", limit=10) == results


# --- Load errors -------------------------------------------------------------------


def test_missing_root_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CorpusError, match="does not exist") as caught:
        LocalCorpus.load(missing)
    assert str(missing) in str(caught.value)
    assert caught.value.path == missing
    assert isinstance(caught.value, UsageError)
    assert caught.value.exit_code == 2


def test_root_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "doc.md", "# Doc")
    with pytest.raises(CorpusError, match="is not a directory") as caught:
        LocalCorpus.load(path)
    assert str(path) in str(caught.value)


def test_directory_without_supported_files_lists_the_extensions(tmp_path: Path) -> None:
    write(tmp_path, "paper.rst", "Not read")
    write(tmp_path, ".hidden/doc.md", "# Hidden")
    with pytest.raises(CorpusError, match="no supported files found") as caught:
        LocalCorpus.load(tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message
    assert ".md, .markdown, .txt, .html, .htm, .pdf" in message


@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"caf\xe9 cr\xe8me", "utf16".encode("utf-16")],
    ids=["binary", "latin-1", "utf-16"],
)
def test_undecodable_file_is_named_with_a_fix(tmp_path: Path, content: bytes) -> None:
    write(tmp_path, "good.md", "# Good")
    bad = write(tmp_path, "sub/bad.md", content)
    with pytest.raises(CorpusError, match="remove it or convert it to UTF-8") as caught:
        LocalCorpus.load(tmp_path)
    assert str(bad.resolve()) in str(caught.value)
    assert caught.value.path == bad.resolve()


def test_empty_files_are_skipped(tmp_path: Path) -> None:
    write(tmp_path, "empty.md", "")
    write(tmp_path, "blank.txt", "  \n\n ")
    write(tmp_path, "only-front-matter.md", "---\ntitle: Nothing\n---\n")
    write(tmp_path, "real.md", "# Real\n\nContent.")
    corpus = LocalCorpus.load(tmp_path)
    assert [passage.title for passage in corpus.passages] == ["Real"]


def test_corpus_of_only_empty_files_is_an_empty_corpus(tmp_path: Path) -> None:
    write(tmp_path, "empty.md", "")
    write(tmp_path, "blank.html", "<html><script>only()</script></html>")
    with pytest.raises(CorpusError, match="empty corpus") as caught:
        LocalCorpus.load(tmp_path)
    assert str(tmp_path) in str(caught.value)


# --- Confinement to the corpus directory -------------------------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A document next to the corpus, not in it, holding text that must never be read."""
    return write(tmp_path, "outside/private.md", "# Private\n\nCANARY-OUTSIDE-THE-CORPUS")


def test_symlinks_leading_out_of_the_corpus_are_refused_and_logged(
    tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "corpus"
    write(root, "good.md", "# Good\n\nDurable timers fire after a restart.")
    write(root, "sub/kept.md", "# Kept\n\nRetry policies space out attempts.")
    (root / "alias.md").symlink_to(root / "sub" / "kept.md")  # inside the root: fine
    (root / "leak.txt").symlink_to("/etc/passwd")
    (root / "sub" / "private.md").symlink_to(outside)
    (root / "relative.md").symlink_to(Path("..") / "outside" / "private.md")
    (root / "linked-dir").symlink_to(outside.parent, target_is_directory=True)
    with capture_logs() as logs:
        corpus = LocalCorpus.load(root)

    texts = " ".join(passage.text for passage in corpus.passages)
    assert "CANARY" not in texts and "root:" not in texts
    assert sorted(Path(passage.location).name for passage in corpus.passages) == [
        "alias.md",
        "good.md",
        "kept.md",
    ]
    refused = {
        item.path.relative_to(root.resolve()).as_posix(): item.reason for item in corpus.refused
    }
    assert set(refused) == {"leak.txt", "sub/private.md", "relative.md"}
    assert "/etc/passwd" in refused["leak.txt"]
    assert all("outside the corpus" in reason for reason in refused.values())
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert {Path(entry["path"]).name for entry in warnings} == {
        "leak.txt",
        "private.md",
        "relative.md",
    }
    assert all("outside the corpus" in entry["reason"] for entry in warnings)


def test_broken_symlinks_fifos_and_oversized_files_are_refused_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_DOCUMENT_BYTES", 1000)
    write(tmp_path, "good.md", "# Good\n\nText.")
    write(tmp_path, "big.txt", "word " * 300)
    (tmp_path / "dangling.md").symlink_to(tmp_path / "gone.md")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    os.mkfifo(tmp_path / "pipe.txt")  # reading it would block for ever
    corpus = LocalCorpus.load(tmp_path)
    assert [passage.title for passage in corpus.passages] == ["Good"]
    reasons = {item.path.name: item.reason for item in corpus.refused}
    assert set(reasons) == {"big.txt", "dangling.md", "loop.md", "pipe.txt"}
    assert "larger than" in reasons["big.txt"]
    assert "not a regular file" in reasons["pipe.txt"]
    # The fingerprint walks the same files without tripping over them.
    assert corpus_fingerprint(tmp_path) == corpus_fingerprint(tmp_path)


def test_corpus_whose_files_are_all_refused_says_so(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "leak.txt").symlink_to("/etc/passwd")
    (root / "private.md").symlink_to(outside)
    with pytest.raises(CorpusError, match="2 refused") as caught:
        LocalCorpus.load(root)
    assert "outside the corpus" in str(caught.value)


def test_a_file_swapped_for_an_outside_symlink_after_the_scan_is_not_read(
    tmp_path: Path, outside: Path
) -> None:
    """The check is made again on the opened file, so a swap between scan and read fails."""
    root = tmp_path / "corpus"
    path = write(root, "doc.md", "# Doc\n\nHarmless.")
    real_scan = sources._scan

    def scan_then_swap(scanned_root: Path) -> sources.Scan:
        result = real_scan(scanned_root)
        path.unlink()
        path.symlink_to(outside)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sources, "_scan", scan_then_swap)
        with pytest.raises(CorpusError, match="refused"):
            LocalCorpus.load(root)


# --- Fingerprint -------------------------------------------------------------------


def test_fingerprint_tracks_supported_files_only(tmp_path: Path) -> None:
    doc = write(tmp_path, "doc.md", "# Doc")
    original = corpus_fingerprint(tmp_path)
    assert corpus_fingerprint(tmp_path) == original

    write(tmp_path, "ignored.rst", "%PDF")
    write(tmp_path, ".cache/x.md", "hidden")
    assert corpus_fingerprint(tmp_path) == original

    stat = doc.stat()
    os.utime(doc, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = corpus_fingerprint(tmp_path)
    assert touched != original

    write(tmp_path, "new.txt", "more")
    assert corpus_fingerprint(tmp_path) not in (original, touched)


def test_fingerprint_names_files_by_their_path_under_the_root(tmp_path: Path) -> None:
    write(tmp_path, "guides/timers.md", "# Timers")
    write(tmp_path, "guides/deep/retries.md", "# Retries")
    before = corpus_fingerprint(tmp_path)
    # A file moved to another directory (same name, size and time) is a different corpus.
    (tmp_path / "guides" / "deep" / "retries.md").rename(tmp_path / "guides" / "retries.md")
    assert corpus_fingerprint(tmp_path) != before
    # The hash is of each file's relative POSIX path, size and time, in path order: corpus
    # indexes on disk are keyed by it, so another format would rebuild every user's index.
    expected = hashlib.sha256()
    for relative in ("guides/retries.md", "guides/timers.md"):
        status = (tmp_path / relative).stat()
        expected.update(f"{relative}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    assert corpus_fingerprint(tmp_path) == expected.hexdigest()


def test_fingerprint_of_missing_root_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="does not exist"):
        corpus_fingerprint(tmp_path / "nowhere")


# --- The example corpus ------------------------------------------------------------


@pytest.fixture(scope="module")
def example_corpus() -> LocalCorpus:
    return LocalCorpus.load(EXAMPLE_CORPUS)


@pytest.mark.parametrize(
    ("query", "expected_file"),
    [
        ("saga compensation", "saga-pattern-and-compensation.md"),
        ("idempotency key expiry", "idempotency-keys.md"),
        ("dead letter queue retention", "dead-letter-queues.txt"),
        ("heartbeat timeout", "activity-timeouts-and-heartbeats.md"),
        ("sagas versus two-phase commit isolation", "sagas-versus-two-phase-commit.html"),
    ],
)
def test_example_corpus_answers_topic_queries(
    example_corpus: LocalCorpus, query: str, expected_file: str
) -> None:
    top = example_corpus.search(query, limit=5)[0]
    assert Path(top.location).name == expected_file
