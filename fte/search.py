"""`fte search`: show what the retriever sees for a query, ranked, with where each passage is.

Users need it to understand why a report cited what it cited, so it searches exactly as a
source finder does: the same corpus index (`fte.sources.cached_corpus`), the same terms.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from fte.contracts import Passage
from fte.errors import UsageError
from fte.progress_view import printable
from fte.research import validate_query

MAX_RESULTS = 100
SNIPPET_CHARS = 200


def validate_limit(k: int) -> int:
    if not 1 <= k <= MAX_RESULTS:
        raise UsageError(f"-k must be between 1 and {MAX_RESULTS}, got {k}")
    return k


def search(query: str, *, corpus: Path, sources: tuple[str, ...], k: int) -> list[Passage]:
    """The top `k` passages over the chosen sources, best first."""
    from fte.sources import cached_corpus

    rankings: list[list[Passage]] = []
    if "local" in sources:
        rankings.append(cached_corpus(corpus.expanduser().resolve()).search(query, limit=k))
    if "web" in sources:
        import httpx

        from fte.web import fuse, web_source_from_env

        with httpx.Client(timeout=httpx.Timeout(10.0)) as client:
            web = web_source_from_env(client)
            rankings.append(web.search(query, limit=k))
        for refusal in web.refusals:
            print(f"fte: refused {printable(refusal.url)}: {refusal.reason}", file=sys.stderr)
        if len(rankings) > 1:
            # BM25 scores of the corpus and of a handful of pages are on different scales.
            return fuse(rankings, limit=k)
    return rankings[0] if rankings else []


def where(passage: Passage) -> str:
    """The file path or URL, then the heading path and page inside it."""
    parts = [passage.location]
    if passage.section:
        parts.append(f"§ {passage.section}")
    if passage.page is not None:
        parts.append(f"p. {passage.page}")
    return ", ".join(parts)


def snippet(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= SNIPPET_CHARS else flat[: SNIPPET_CHARS - 1].rstrip() + "…"


def as_json(passages: list[Passage]) -> list[dict[str, object]]:
    results: list[dict[str, object]] = []
    for rank, p in enumerate(passages, 1):
        key = "url" if p.location.startswith(("http://", "https://")) else "path"
        results.append(
            {
                "rank": rank,
                "score": round(p.score, 4),
                "title": p.title,
                key: p.location,
                "section": p.section,
                "page": p.page,
                "passage_id": p.passage_id,
                "text": p.text,
            }
        )
    return results


def run(
    query: str,
    *,
    corpus: Path,
    sources: Sequence[str],
    k: int,
    json_output: bool,
    out: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    passages = search(
        validate_query(query),
        corpus=corpus,
        sources=tuple(sources),
        k=validate_limit(k),
    )
    if json_output:
        print(json.dumps(as_json(passages), indent=2, ensure_ascii=False), file=out)
        return 0
    if not passages:
        print("no passage matches the query", file=out)
        return 0
    for rank, p in enumerate(passages, 1):
        # Text from documents is shown, never interpreted by the terminal.
        print(f"{rank:>2}. {p.score:7.3f}  {printable(p.title)}", file=out)
        print(f"    {printable(where(p))}", file=out)
        print(f"    {printable(snippet(p.text))}", file=out)
    return 0
