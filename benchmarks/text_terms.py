"""Benchmark: `fte.text.terms` over the sample corpus with the cached stemmer and without.

The offline agents and the corpus search turn text into stemmed terms on every call; the
profile of the throughput load (benchmarks/profile_throughput.py) had `stem` as the
worker's top function. Rounds alternate; prints the medians and their ratio.

    python benchmarks/text_terms.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import fte.text

CORPUS = Path(__file__).resolve().parent.parent / "examples" / "corpus"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = [p.read_text() for p in sorted(CORPUS.rglob("*.md"))]
    cached = fte.text.stem
    # `terms` looks `stem` up in its module on every call, so swapping the module attribute
    # swaps the stemmer it uses.
    variants = {"uncached": cached.__wrapped__, "cached": cached}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, stemmer in variants.items():
                fte.text.stem = stemmer  # type: ignore[assignment]
                started = time.perf_counter()
                for text in texts:
                    fte.text.terms(text)
                walls[name].append(time.perf_counter() - started)
    finally:
        fte.text.stem = cached
    words = sum(len(text.split()) for text in texts)
    for name, wall in walls.items():
        print(f"{name:<9} {statistics.median(wall) * 1000:7.1f} ms for {words} words")
    ratio = statistics.median(walls["uncached"]) / statistics.median(walls["cached"])
    print(f"cached stemmer: {ratio:.1f}x faster terms()")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
