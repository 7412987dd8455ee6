"""Text utilities shared by retrieval and the offline agents: words, stems, sentences.

One tokeniser, one stemmer and one sentence splitter for the whole project, so the
corpus index, the offline agents and the citation checks agree on what a word is.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# A claim is a whole ordinary sentence of this many words.
CLAIM_MIN_WORDS = 5
CLAIM_MAX_WORDS = 80

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by ca can cannot could did do does doing down during
    each either else even every few for from further had has have having he her here hers
    him his how however i if in into is it its itself just let lets may me might more most
    must my neither no nor not of off on once only or other our ours out over own per
    please same shall she should so some such than that the their theirs them then there
    these they this those through thus to too under until up upon us very via vs versus was
    we were what when where whether which while who whom whose why will with within without
    wo would yet you your yours""".split()
)
# Words that say what kind of question it is rather than what it is about: left out when
# finding a query's subject and when judging whether a passage is on topic.
GENERIC_WORDS = frozenset(
    """advantage advantages aspects benefit benefits best better choice common compare
    compared compares comparing comparison con cons cost costs describe difference
    differences disadvantage disadvantages example examples exist explain explained good
    false impossible important instead key kind kinds limit limitation limitations limits
    main mechanism mechanisms mode modes necessary overview possible practical practice
    practices pro pros purpose recommend recommended risk risks role show source sources
    tell trade trade-off trade-offs tradeoff tradeoffs true type types use used using way
    ways work works worth""".split()
)
NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|none|nor|neither|nothing|nobody|nowhere)\b|n['’]t\b",
    re.IGNORECASE,
)
NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
TERM = re.compile(r"[^\W_]+")


# Cached: the same few thousand words recur in every passage, query and claim, and the
# offline agents and the corpus search stem them again on each call (a tenth of the
# worker's CPU under 50 runs at once); `terms` is 3-4x faster over the sample corpus
# with the cache (benchmarks/text_terms.py).
@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """Light suffix folding so "crashes", "crashed" and "crashing" meet at "crash".

    Only consistency matters (both sides of a comparison go through it), so the stems need
    not be real words.
    """
    for suffix, replacement in (("ies", "y"), ("ied", "y"), ("sses", "ss")):
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            return word[: -len(suffix)] + replacement
    if word.endswith(("ches", "shes", "xes", "zes")) and len(word) > 5:
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        word = word[:-1]
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and re.search(r"[aeiouy]", stem):
            word = stem
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]  # "stopped" -> "stopp" -> "stop"
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]  # "store"/"stored"/"storing" -> "stor"
    return word


def terms(text: str, *, drop: frozenset[str] = frozenset()) -> list[str]:
    """Stemmed content words in order; negations are not content (they are checked apart)."""
    lowered = text.lower().replace("’", "'")
    lowered = re.sub(r"n't\b", " not", lowered)
    lowered = re.sub(r"'s\b", "", lowered)
    stems = (
        stem(word)
        for word in TERM.findall(lowered)
        if word not in STOP_WORDS and word not in drop and (len(word) > 1 or word.isdigit())
    )
    # Checked again after stemming: "trade-offs" splits into "trade" and "offs" -> "off".
    return [stem for stem in stems if stem not in STOP_WORDS and stem not in drop]


def term_set(text: str, *, drop: frozenset[str] = frozenset()) -> frozenset[str]:
    return frozenset(terms(text, drop=drop))


def collapse(text: str) -> str:
    return " ".join(text.split())


def ordered_unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


@dataclass(frozen=True)
class Sentence:
    raw: str  # exactly as in the passage, so it can be quoted as evidence
    text: str  # whitespace collapsed, for claims
    terms: frozenset[str]
    claimable: bool


_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_FENCE = re.compile(r"[ \t]*(?:```|~~~)")
# Closers after the full stop include Markdown emphasis: "**Idempotency.** The engine ...".
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]*_]*(?=\s)")
_ABBREVIATIONS = frozenset(
    "e.g. i.e. etc. vs. cf. approx. no. fig. al. mr. mrs. ms. dr. st. p.".split()
)
_EMPHASISED = re.compile(r"(\*\*|__)[^*_]*\1", re.DOTALL)
_SENTENCE_START = "\"'“‘`([*_"


def _items(text: str) -> list[tuple[int, int]]:
    """Spans of prose paragraphs and list items, with headings, code and tables left out.

    Spans index into `text`, so every sentence cut from them is a verbatim substring.
    """
    spans: list[tuple[int, int]] = []
    current: list[int] | None = None
    in_fence = False
    offset = 0
    for line in text.split("\n"):
        start, end = offset, offset + len(line)
        offset = end + 1
        stripped = line.strip()
        if _FENCE.match(line):
            in_fence = not in_fence
        is_break = in_fence or not stripped or stripped.startswith(("#", "|", "```", "~~~"))
        marker = None if is_break else _LIST_MARKER.match(line)
        if is_break or marker:
            if current:
                spans.append((current[0], current[1]))
            current = None
        if marker:
            current = [start + marker.end(), end]
        elif not is_break:
            if current:
                current[1] = end
            else:
                current = [start + len(line) - len(line.lstrip()), end]
    if current:
        spans.append((current[0], current[1]))
    return spans


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    for match in _SENTENCE_END.finditer(text, start, end):
        following = match.end()
        while following < end and text[following].isspace():
            following += 1
        if following >= end:
            break
        char = text[following]
        if not (char.isupper() or char.isdigit() or char in _SENTENCE_START):
            continue
        last_word = text[begin : match.start() + 1].split()[-1].lstrip("(\"'“‘")
        if last_word.lower() in _ABBREVIATIONS or re.fullmatch(r"[A-Z]\.", last_word):
            continue  # "e.g. Dapr" or an initial, not the end of a sentence
        spans.append((begin, match.end()))
        begin = following
    if begin < end:
        spans.append((begin, end))
    return spans


def is_claimable(sentence: str) -> bool:
    """Whether a sentence can stand alone as a claim: a whole, ordinary prose sentence."""
    words = sentence.split()
    letters = [char for char in sentence if char.isalpha()]
    shouting = len(letters) > 10 and sum(char.isupper() for char in letters) > 0.6 * len(letters)
    return (
        CLAIM_MIN_WORDS <= len(words) <= CLAIM_MAX_WORDS
        and (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in _SENTENCE_START)
        # A chunk that starts mid-sentence (the overlap tail) starts lower-case; a lead-in
        # to a list ends with ':'. Neither is a claim on its own.
        and sentence.rstrip("\"'”’)]*_")[-1:] in (".", "!", "?")
        and not shouting
        # A wholly bold sentence is a list item's label ("**Make activities idempotent.**").
        and not _EMPHASISED.fullmatch(sentence)
    )


def sentences(text: str) -> list[Sentence]:
    """Every sentence of the prose in `text` (headings, code and tables left out), verbatim."""
    found: list[Sentence] = []
    for item_start, item_end in _items(text):
        for start, end in _sentence_spans(text, item_start, item_end):
            raw = text[start:end].strip()
            if raw:
                found.append(Sentence(raw, collapse(raw), term_set(raw), is_claimable(raw)))
    return found


def coverage(wanted: frozenset[str], found: frozenset[str]) -> float:
    """The share of `wanted` terms that are in `found`."""
    return len(wanted & found) / len(wanted) if wanted else 0.0


def inverse_document_frequency(documents: Sequence[frozenset[str]]) -> dict[str, float]:
    """Smoothed IDF of every term over `documents` (each a set of terms)."""
    counts: dict[str, int] = {}
    for terms in documents:
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
    return {term: math.log(1 + len(documents) / count) for term, count in counts.items()}


def tokenize(text: str) -> list[str]:
    """Stemmed words and numbers with stop words dropped: the corpus index's terms."""
    return [stem(word) for word in TERM.findall(text.lower()) if word not in STOP_WORDS]


def normalise_quote(text: str) -> str:
    """Lower-cased, typographic quotes folded, whitespace collapsed: for verbatim-quote checks."""
    text = text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"')
    return re.sub(r"\s+", " ", text).strip().lower()


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """`1 gap`, `2 gaps`: a count with its noun in the right number."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
