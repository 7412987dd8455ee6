"""The persistent corpus index: locations (heading path, PDF page), incremental updates,
re-opening without reading, one writer at a time, and bad input that loses nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from fte import corpus_index, sources
from fte.errors import CorpusError
from fte.sources import LocalCorpus
from tests.support.documents import make_pdf, write


def touch_later(path: Path) -> None:
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))


def updates(logs: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == "corpus index updated"]


@pytest.fixture
def index_dir(tmp_path: Path) -> Path:
    return tmp_path / "index"


def test_markdown_passages_carry_their_heading_path(tmp_path: Path, index_dir: Path) -> None:
    write(
        tmp_path / "docs",
        "guide.md",
        "# Guide\n\nIntro.\n\n## Install\n\nGet it.\n\n### On Linux\n\nUse apt.\n\n"
        "## Configure\n\nEdit the file.\n",
    )
    corpus = LocalCorpus.load(tmp_path / "docs", index_dir=index_dir)
    located = [(p.section, p.text.split("\n")[-1]) for p in corpus.passages]
    assert located == [
        ("", "Intro."),
        ("Install", "Get it."),
        ("Install › On Linux", "Use apt."),
        ("Configure", "Edit the file."),
    ]
    assert corpus.search("apt", limit=1)[0].section == "Install › On Linux"


def test_html_passages_carry_their_heading_path(tmp_path: Path, index_dir: Path) -> None:
    write(
        tmp_path,
        "page.html",
        "<title>Retries</title><h1>Retries</h1><p>Intro.</p><h2>Backoff</h2><p>Exponential.</p>"
        "<h3>Jitter</h3><p>Random.</p><h2>Limits</h2><p>Five attempts.</p>",
    )
    corpus = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert [(p.section, p.text) for p in corpus.passages] == [
        ("", "Retries\n\nIntro."),
        ("Backoff", "Backoff\n\nExponential."),
        ("Backoff › Jitter", "Jitter\n\nRandom."),
        ("Limits", "Limits\n\nFive attempts."),
    ]


def test_pdf_passages_carry_their_page(tmp_path: Path, index_dir: Path) -> None:
    pages = ["Durable timers fire later.", "Sagas compensate in reverse order."]
    write(tmp_path, "paper.pdf", make_pdf(pages, title="Workflow Notes"))
    corpus = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert [(p.title, p.page, p.text) for p in corpus.passages] == [
        ("Workflow Notes", 1, pages[0]),
        ("Workflow Notes", 2, pages[1]),
    ]
    assert corpus.search("compensate", limit=1)[0].page == 2


def test_damaged_pdf_is_refused_not_fatal(tmp_path: Path, index_dir: Path) -> None:
    write(tmp_path, "broken.pdf", b"%PDF-1.7\nthis is not a PDF body")
    write(tmp_path, "notes.txt", "Readable notes.")
    with capture_logs() as logs:
        corpus = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert [refused.path.name for refused in corpus.refused] == ["broken.pdf"]
    assert "not a readable PDF" in corpus.refused[0].reason
    assert any(entry["event"] == "corpus file refused" for entry in logs)
    # Re-opened without re-reading, the refusal is still reported.
    again = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert [refused.path.name for refused in again.refused] == ["broken.pdf"]


def test_reopening_an_unchanged_corpus_reads_no_file(
    tmp_path: Path, index_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "a.md", "# A\n\nAlpha timers.")
    write(tmp_path, "b.md", "# B\n\nBeta sagas.")
    first = LocalCorpus.load(tmp_path, index_dir=index_dir)

    def no_reads(path: Path, root: Path) -> None:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr(sources, "_read_document", no_reads)
    again = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert again.passages == first.passages
    assert again.search("sagas", limit=1) == first.search("sagas", limit=1)


def test_only_changed_files_are_read_again(tmp_path: Path, index_dir: Path) -> None:
    write(tmp_path, "keep.md", "# Keep\n\nTimers fire later.")
    changed = write(tmp_path, "change.md", "# Change\n\nOld words about queues.")
    removed = write(tmp_path, "remove.md", "# Remove\n\nRetention of dead letters.")
    LocalCorpus.load(tmp_path, index_dir=index_dir)

    changed.write_text("# Change\n\nNew words about idempotency.")
    touch_later(changed)
    removed.unlink()
    write(tmp_path, "added.txt", "Backpressure slows producers.")
    with capture_logs() as logs:
        corpus = LocalCorpus.load(tmp_path, index_dir=index_dir)
    assert [(u["read"], u["removed"]) for u in updates(logs)] == [(2, 1)]
    assert corpus.search("queues", limit=5) == []
    assert corpus.search("retention", limit=5) == []
    assert Path(corpus.search("idempotency", limit=1)[0].location).name == "change.md"
    assert Path(corpus.search("backpressure", limit=1)[0].location).name == "added.txt"
    assert sorted({Path(p.location).name for p in corpus.passages}) == [
        "added.txt",
        "change.md",
        "keep.md",
    ]


def test_the_index_lives_in_the_index_directory_and_is_shared(
    tmp_path: Path, index_dir: Path
) -> None:
    corpus_root = tmp_path / "docs"
    write(corpus_root, "a.md", "# A\n\nAlpha timers.")
    LocalCorpus.load(corpus_root, index_dir=index_dir)
    (location,) = index_dir.iterdir()
    assert location == corpus_index.index_location(
        index_dir, corpus_root.resolve(), chunk_chars=1200, overlap_chars=200
    )
    assert (location / "manifest.json").is_file()
    # Another process opens the same index and finds the same passage.
    script = (
        "import sys; from pathlib import Path; from fte.sources import LocalCorpus; "
        "c = LocalCorpus.load(Path(sys.argv[1]), index_dir=Path(sys.argv[2])); "
        "print(c.search('timers', limit=1)[0].passage_id)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(corpus_root), str(index_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == sources.passage_id("a.md", 0)


def test_two_processes_building_one_index_at_once_agree(tmp_path: Path, index_dir: Path) -> None:
    corpus_root = tmp_path / "docs"
    for number in range(40):
        write(corpus_root, f"doc{number}.md", f"# Doc {number}\n\n" + "Timers and sagas. " * 200)
    script = (
        "import sys; from pathlib import Path; from fte.sources import LocalCorpus; "
        "c = LocalCorpus.load(Path(sys.argv[1]), index_dir=Path(sys.argv[2])); print(len(c))"
    )
    command = [sys.executable, "-c", script, str(corpus_root), str(index_dir)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    outputs = [process.communicate() for process in (first, second)]
    assert [process.returncode for process in (first, second)] == [0, 0], outputs
    counts = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert counts == {str(len(LocalCorpus.load(corpus_root, index_dir=index_dir)))}
    # Exactly one of them read the files; the other found the index up to date.
    assert sum("corpus index updated" in err + out for out, err in outputs) == 1


def test_a_bad_file_fails_the_update_and_keeps_the_index(tmp_path: Path, index_dir: Path) -> None:
    write(tmp_path, "good.md", "# Good\n\nTimers fire later.")
    before = LocalCorpus.load(tmp_path, index_dir=index_dir).passages
    bad = write(tmp_path, "bad.txt", b"caf\xe9")
    with pytest.raises(CorpusError, match="not UTF-8"):
        LocalCorpus.load(tmp_path, index_dir=index_dir)
    bad.unlink()
    assert LocalCorpus.load(tmp_path, index_dir=index_dir).passages == before


def test_a_deleted_index_is_rebuilt_from_the_files(tmp_path: Path, index_dir: Path) -> None:
    write(tmp_path / "docs", "a.md", "# A\n\nAlpha timers.")
    first = LocalCorpus.load(tmp_path / "docs", index_dir=index_dir)
    (location,) = index_dir.iterdir()
    shutil.rmtree(location / "tantivy")
    assert LocalCorpus.load(tmp_path / "docs", index_dir=index_dir).passages == first.passages
