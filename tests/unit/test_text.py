"""Words, stems and sentences: the text rules the offline agents and citation checks share."""

from __future__ import annotations

import math

import pytest

from fte.text import (
    CLAIM_MIN_WORDS,
    GENERIC_WORDS,
    NEGATION,
    NUMBER,
    collapse,
    coverage,
    inverse_document_frequency,
    is_claimable,
    normalise_quote,
    ordered_unique,
    sentences,
    stem,
    term_set,
    terms,
    tokenize,
)


@pytest.mark.parametrize(
    ("forms", "expected"),
    [
        (["crash", "crashes", "crashed", "crashing"], "crash"),
        (["stop", "stops", "stopped", "stopping"], "stop"),
        (["store", "stores", "stored", "storing"], "stor"),
        (["policy", "policies"], "policy"),
        (["retry", "retries", "retried"], "retry"),
        (["box", "boxes"], "box"),
        (["process", "processes"], "process"),
        (["run", "running"], "run"),
    ],
)
def test_stem_folds_inflections_together(forms: list[str], expected: str) -> None:
    assert {stem(form) for form in forms} == {expected}


@pytest.mark.parametrize("word", ["is", "status", "access", "bus", "sing"])
def test_stem_leaves_short_and_s_final_words_alone(word: str) -> None:
    assert stem(word) == word


def test_terms_are_stemmed_content_words_in_order() -> None:
    found = terms("The engine doesn't replay Dapr's 3 timers; trade-offs apply, x y")

    # Stop words, the negation, the possessive and single letters go; numbers stay.
    assert found == ["engin", "replay", "dapr", "3", "timer", "trad", "apply"]


def test_terms_can_drop_generic_words() -> None:
    assert terms("the main benefits of durable workflows", drop=GENERIC_WORDS) == [
        "durabl",
        "workflow",
    ]
    assert term_set("Timers, timers and TIMERS") == frozenset({"timer"})


def test_tokenize_keeps_numbers_and_folds_plurals() -> None:
    assert tokenize("The Retries of policies after 30 days") == ["retry", "policy", "30", "day"]


def test_collapse_and_ordered_unique() -> None:
    assert collapse("  a\n\tb   c ") == "a b c"
    assert ordered_unique(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def test_coverage_is_the_share_of_wanted_terms_found() -> None:
    assert coverage(frozenset("abcd"), frozenset("abx")) == 0.5
    assert coverage(frozenset(), frozenset("abc")) == 0.0


def test_inverse_document_frequency_weighs_rare_terms_more() -> None:
    idf = inverse_document_frequency([frozenset("ab"), frozenset("a"), frozenset("a")])

    assert idf["b"] > idf["a"] > 0
    assert idf["a"] == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("Timers do not survive restarts.", True),
        ("Timers don't survive restarts.", True),
        ("Timers can’t be cancelled.", True),
        ("Nothing is lost.", True),
        ("Note that timers survive restarts.", False),
        ("Knowledge of timers is useful.", False),
    ],
)
def test_negation(text: str, negated: bool) -> None:
    assert (NEGATION.search(text) is not None) is negated


def test_numbers_keep_their_separators() -> None:
    assert NUMBER.findall("30 days, 1,000 rows, 3.5 s at 10:30") == ["30", "1,000", "3.5", "10:30"]


def test_normalise_quote_folds_case_quotes_and_spaces() -> None:
    assert normalise_quote("It\u2019s  \u201cFine\u201d\n now ") == 'it\'s "fine" now'


# --- sentences ----------------------------------------------------------------------------

DOCUMENT = """# Durable timers

Durable timers survive restarts of the worker. They are cheap, e.g. Dapr keeps them in a
state store! Are they exact to the millisecond? J. Smith says they are not exact.

```python
ctx.create_timer(fire_at)  # This is code. It is not a sentence.
```

| timer | state |
|-------|-------|
| t1 | Fired and recorded in the history. |

- **Idempotency.** The engine retries activities until they succeed.
- A list item without a full stop at the end
1. Numbered items are sentences of their own.

Steps to follow:
WARNING THIS IS ALL SHOUTING TEXT IN A DOCUMENT.

**Make every activity idempotent.**

the tail of a chunk that starts in the middle of a sentence.
"""


def test_sentences_are_verbatim_and_skip_headings_code_and_tables() -> None:
    found = sentences(DOCUMENT)

    assert [s.text for s in found] == [
        "Durable timers survive restarts of the worker.",
        "They are cheap, e.g. Dapr keeps them in a state store!",
        "Are they exact to the millisecond?",
        "J. Smith says they are not exact.",
        "**Idempotency.**",
        "The engine retries activities until they succeed.",
        "A list item without a full stop at the end",
        "Numbered items are sentences of their own.",
        "Steps to follow: WARNING THIS IS ALL SHOUTING TEXT IN A DOCUMENT.",
        "**Make every activity idempotent.**",
        "the tail of a chunk that starts in the middle of a sentence.",
    ]
    for sentence in found:
        # Quotable as evidence: the raw text is in the document exactly as written.
        assert sentence.raw in DOCUMENT
        assert sentence.text == collapse(sentence.raw)
        assert sentence.terms == term_set(sentence.raw)


def test_only_whole_ordinary_sentences_are_claimable() -> None:
    claimable = [s.text for s in sentences(DOCUMENT) if s.claimable]

    assert claimable == [
        "Durable timers survive restarts of the worker.",
        "They are cheap, e.g. Dapr keeps them in a state store!",
        "Are they exact to the millisecond?",
        "J. Smith says they are not exact.",
        "The engine retries activities until they succeed.",
        "Numbered items are sentences of their own.",
    ]


@pytest.mark.parametrize(
    ("sentence", "claimable"),
    [
        ("Durable timers survive restarts of workers.", True),
        ("Timers survive restarts.", False),  # too short to stand alone
        ("durable timers survive restarts of workers.", False),  # starts mid-sentence
        ("Durable timers survive restarts of workers", False),  # no full stop
        ("The following steps make activities safe:", False),  # a lead-in to a list
        ("DURABLE TIMERS SURVIVE RESTARTS OF ALL WORKERS.", False),  # shouting
        ("**Durable timers survive restarts of workers.**", False),  # a bold label
        ('"Durable timers survive restarts," the docs say.', True),
        ("In 2024 the engine kept 30 days of history.", True),
        (" ".join(["word"] * 100).capitalize() + ".", False),  # too long
    ],
)
def test_is_claimable(sentence: str, claimable: bool) -> None:
    assert is_claimable(sentence) is claimable


def test_claim_length_limits_are_counted_in_words() -> None:
    words = ["Timers", *["survive"] * (CLAIM_MIN_WORDS - 1)]

    assert is_claimable(" ".join(words) + ".")
    assert not is_claimable(" ".join(words[:-1]) + ".")


def test_sentences_of_empty_or_code_only_text() -> None:
    assert sentences("") == []
    assert sentences("```\nonly code.\n```\n") == []
    assert sentences("# Only a heading\n") == []
