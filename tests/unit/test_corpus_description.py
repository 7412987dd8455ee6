"""The corpus index reads a Markdown page's front-matter description with every chunk."""

from __future__ import annotations

from pathlib import Path

from fte.sources import LocalCorpus


def test_a_page_is_found_by_its_description_in_every_chunk(tmp_path: Path) -> None:
    body = "\n\n".join(f"Paragraph {n} about sidecars and components." for n in range(60))
    (tmp_path / "scopes.md").write_text(
        '---\ntitle: "Scopes"\ndescription: "Restrict which applications may load a component"\n'
        f"---\n\n{body}\n"
    )
    (tmp_path / "other.md").write_text("# Other\n\nSidecars and components, and nothing else.\n")
    corpus = LocalCorpus.load(tmp_path)
    scopes = [p for p in corpus.passages if p.location.endswith("scopes.md")]
    assert len(scopes) > 1  # the description is not in any chunk's text, nor the title's
    found = corpus.search("restrict applications", limit=10)
    assert {p.passage_id for p in found} == {p.passage_id for p in scopes}
    assert all(p.title == "Scopes" for p in scopes)
