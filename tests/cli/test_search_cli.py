"""`fte search`: ranked passages with score, title, location and snippet; --json; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fte.cli import main
from tests.support.documents import make_pdf


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "guide.md").write_text(
        "# Guide\n\nIntro.\n\n## Retries\n\nRetry with exponential backoff and jitter.\n"
    )
    (root / "paper.pdf").write_bytes(make_pdf(["Cover.", "Sagas compensate in reverse order."]))
    (root / "evil.txt").write_text("Backoff \x1b[31mred\x1b[0m text.")
    return root


def search(tmp_path: Path, *args: str) -> list[str]:
    return ["search", *args, "--data-dir", str(tmp_path / "data")]


def test_search_lists_ranked_passages_with_their_location(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(search(tmp_path, "exponential backoff", "--corpus", str(corpus))) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(" 1. ") and lines[0].endswith("Guide")
    assert lines[1].strip() == f"{corpus / 'guide.md'}, § Retries"
    assert "Retry with exponential backoff" in lines[2]
    # Document text cannot drive the terminal: the escape is shown, not sent.
    assert "\x1b" not in "\n".join(lines) and "\\x1b[31mred" in "\n".join(lines)
    # The index was built in the data directory, and is reused from there.
    assert (tmp_path / "data" / "index").is_dir()


def test_search_json_has_path_title_score_text_and_page(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(search(tmp_path, "sagas reverse", "--corpus", str(corpus), "-k", "1", "--json"))
    assert code == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["path"] == str(corpus / "paper.pdf")
    assert result["page"] == 2
    assert result["text"] == "Sagas compensate in reverse order."
    assert result["score"] > 0 and result["title"] == "paper"


def test_search_without_matches_says_so(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(search(tmp_path, "kubernetes", "--corpus", str(corpus))) == 0
    assert capsys.readouterr().out.strip() == "no passage matches the query"
    assert main(search(tmp_path, "kubernetes", "--corpus", str(corpus), "--json")) == 0
    assert json.loads(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  "], "query is empty"),
        (["x", "-k", "0"], "-k must be between 1 and 100"),
        (["x", "--sources", "local,ftp"], "sources='ftp' is invalid"),
        (["x", "--corpus", "/nonexistent/corpus"], "does not exist"),
    ],
    ids=["empty-query", "bad-k", "bad-source", "missing-corpus"],
)
def test_bad_search_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(search(tmp_path, *args)) == 2
    err = capsys.readouterr().err
    assert err.startswith("fte: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_web_research_without_a_search_api_is_refused_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TAVILY_API_KEY", "BRAVE_API_KEY", "FTE_SEARXNG_URL", "FTE_WEB_SEARCH"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    code = main(
        ["research", "how do timers work", "--sources", "local,web", "--data-dir", str(data)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "fte: error: web search needs one search API: "
        "set TAVILY_API_KEY, BRAVE_API_KEY or FTE_SEARXNG_URL"
    )
    # Checked before the runtime starts: the data directory holds the corpus index and logs only.
    assert sorted(p.name for p in data.iterdir()) == ["index", "logs"]
