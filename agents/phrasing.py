"""Reading a research question and phrasing questions, headings and titles from it.

The offline agents have no language model, so they phrase by rule: find the question's
subject, its main verb ("How do <subject> <verb> ..."), a comparison ("X vs Y") and the
other topics it names, then fill templates with them. Word lists stand in for a
part-of-speech tagger; each rule fires only on strong signals, and falls back to the
question's own words, which is safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fte.text import GENERIC_WORDS, STOP_WORDS, collapse

HEADING_MAX_WORDS = 12

_WH_WORDS = frozenset("how what why when where which who".split())
# Auxiliaries after which the query's main verb comes in its base form ("How do X recover").
_VERB_AUXILIARIES = frozenset("do does did can could should would will might must may".split())
# Common base-form verbs in research questions. Words that are as often nouns ("store",
# "retry", "process") are left out: a missed verb costs less than a mangled subject.
VERBS = frozenset(
    """achieve affect allow apply avoid become behave cause communicate coordinate cope
    deal deliver detect differ enable ensure execute fail guarantee handle happen help
    implement improve increase interact keep manage matter perform persist prevent protect
    make need provide recover reduce relate remain require resume scale stay support
    survive""".split()
)
# Verbs too generic to be part of a subject, but still the verb of "How do X work?".
_FOCUS_VERBS = VERBS | {"work", "use", "happen"}
_THIRD_PERSON = frozenset(
    verb + "es" if verb.endswith(("s", "x", "z", "ch", "sh", "o")) else verb + "s"
    for verb in _FOCUS_VERBS
)
_ARTICLES = frozenset({"a", "an", "the"})
_SURFACE_WORD = re.compile(r"[^\W_][\w'’.+#/-]*")


@dataclass(frozen=True)
class Word:
    text: str
    lower: str
    start: int
    end: int


@dataclass(frozen=True)
class QueryAnalysis:
    """The parts of a query that the planner and writer phrase their questions around."""

    subject: str
    focus: str | None = None  # verb phrase in base form: "recover from crashes"
    auxiliary: str | None = None  # the "do"/"does"/"can" that introduced the focus
    wh_word: str | None = None
    others: tuple[str, ...] = ()
    compared: tuple[str, str] | None = None
    is_question: bool = False


def split_words(text: str) -> list[Word]:
    words = []
    for match in _SURFACE_WORD.finditer(text):
        surface = match.group().rstrip(".'’/-")
        if surface:
            start = match.start()
            words.append(Word(surface, surface.lower(), start, start + len(surface)))
    return words


def _is_key(word: Word) -> bool:
    return word.lower not in STOP_WORDS and word.lower not in GENERIC_WORDS


def _runs(text: str, words: Sequence[Word]) -> list[list[Word]]:
    """Maximal runs of adjacent key words: "durable workflows recover", "crashes"."""
    runs: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        adjacent = bool(current) and not text[current[-1].end : word.start].strip()
        if _is_key(word) and (adjacent or not current):
            current.append(word)
            continue
        if current:
            runs.append(current)
        current = [word] if _is_key(word) else []
    if current:
        runs.append(current)
    return runs


def _span(text: str, words: Sequence[Word]) -> str:
    return text[words[0].start : words[-1].end]


def _strip_leading_verbs(run: list[Word]) -> list[Word]:
    while len(run) > 1 and run[0].lower in VERBS:
        run = run[1:]
    return run


def _comparison(text: str, words: list[Word]) -> tuple[str, str] | None:
    """The two sides of "X vs Y", "X compared to Y", "X instead of Y", "between X and Y"."""
    lowers = [word.lower for word in words]
    for index, lower in enumerate(lowers):
        following = lowers[index + 1] if index + 1 < len(lowers) else ""
        if lower in ("vs", "versus"):
            left, right = words[:index], words[index + 1 :]
        elif lower.startswith("compar") and following in ("to", "with", "against"):
            left, right = words[:index], words[index + 2 :]
        elif lower == "instead" and following == "of":
            left, right = words[:index], words[index + 2 :]
        elif lower == "between" and "and" in lowers[index + 1 :]:
            conjunction = lowers.index("and", index + 1)
            left, right = words[index + 1 : conjunction], words[conjunction + 1 :]
        else:
            continue
        left_runs, right_runs = _runs(text, left), _runs(text, right)
        if left_runs and right_runs:
            first = _span(text, _strip_leading_verbs(left_runs[-1]))
            return first, _span(text, _strip_leading_verbs(right_runs[0]))
    return None


def analyse_query(query: str) -> QueryAnalysis:
    text = collapse(query)
    words = split_words(text)
    lowers = [word.lower for word in words]
    wh_word = lowers[0] if lowers and lowers[0] in _WH_WORDS else None
    auxiliary = next(
        (lower for lower in lowers[(1 if wh_word else 0) :][:1] if lower in _VERB_AUXILIARIES),
        None,
    )
    is_question = text.endswith("?") or wh_word is not None
    runs = _runs(text, words)
    if wh_word == "what" and runs and runs[0][0] is words[1] and lowers[1] in _THIRD_PERSON:
        # "What causes X?", "What happens when X?": the verb is not part of the subject.
        runs = [runs[0][1:], *runs[1:]] if len(runs[0]) > 1 else runs[1:]
    if not runs:
        # Nothing but function words ("how does it work?"): the query itself is the topic.
        return QueryAnalysis(subject="", is_question=is_question)
    first, later = runs[0], runs[1:]
    # "the size of a workflow history": an of-phrase stays with the noun it qualifies.
    of_object = later[0] if later and _joined_by(text, first, later[0], "of") else None
    if of_object is not None:
        later = later[1:]
    subject, focus = _subject(text, words, _strip_leading_verbs(first), of_object), None
    verb = _main_verb(words, first, is_last_run=len(runs) == 1) if auxiliary else None
    if verb is not None:
        subject = _subject(text, words, [word for word in first if word.start < verb.start])
    elif auxiliary and of_object is not None:
        # "How does the size of a history affect replay?": the verb follows the of-phrase.
        verb = _main_verb(words, of_object, is_last_run=not later)
        if verb is not None:
            before = [word for word in of_object if word.start < verb.start]
            subject = _subject(text, words, _strip_leading_verbs(first), before)
    elif auxiliary and later and _joined_by(text, first, later[0], "and", "or"):
        # "How do retries and timers make workflows reliable?": a joint subject.
        verb = _main_verb(words, later[0], is_last_run=len(later) == 1)
        if verb is not None:
            subject = _with_article(text, words, first, text[first[0].start : verb.start].rstrip())
    if verb is not None:
        focus = text[verb.start :].rstrip("?!. ")
    # The focus runs to the end of the query, so later runs are part of it, not extra topics.
    others = () if focus else tuple(_span(text, run) for run in later)
    return QueryAnalysis(
        subject=subject,
        focus=focus,
        auxiliary=auxiliary,
        wh_word=wh_word,
        others=others,
        compared=_comparison(text, words),
        is_question=is_question,
    )


def _joined_by(text: str, left: list[Word], right: list[Word], *joiners: str) -> bool:
    """Whether only a joiner ("of", "and"), perhaps with an article, lies between two runs."""
    between = text[left[-1].end : right[0].start].lower().split()
    if len(between) == 2 and between[1] in _ARTICLES:
        between = between[:1]
    return len(between) == 1 and between[0] in joiners


def _subject(
    text: str, words: list[Word], head: list[Word], of_object: list[Word] | None = None
) -> str:
    """The subject phrase, keeping a leading "the" and an of-phrase with their noun.

    "the size of a workflow history" reads as "workflow history size"; an of-phrase that is
    long or plural keeps its "of" ("the maximum size of a message").
    """
    if not head:
        return ""
    if not of_object:
        return _with_article(text, words, head, _span(text, head))
    qualifier = _span(text, of_object)
    if len(head) == 1 and len(of_object) <= 3 and not is_plural(qualifier):
        return f"{qualifier} {head[0].text}"
    return _with_article(text, words, head, text[head[0].start : of_object[-1].end])


def _with_article(text: str, words: list[Word], head: list[Word], phrase: str) -> str:
    index = words.index(head[0])
    return f"the {phrase}" if index and words[index - 1].lower == "the" else phrase


def _main_verb(words: list[Word], run: list[Word], *, is_last_run: bool) -> Word | None:
    """The verb after the subject in "How do <subject> <verb> ...", if it can be told apart.

    Without a part-of-speech tagger this is a guess, so it only fires on strong signals; when
    it does not, the whole run is the subject, which is safe.
    """
    known = next((i for i, word in enumerate(run) if word.lower in VERBS), None)
    if known:  # a verb at index 0 has no subject before it ("How can I use sagas")
        return run[known]
    after = words.index(run[-1]) + 1
    if after < len(words) and words[after].lower in _FOCUS_VERBS:
        return words[after]  # "How do state stores work in Dapr?"
    last = run[-1].lower
    if is_last_run and after == len(words) and len(run) >= 2 and not is_plural(last):
        # "How do workflows replay?": the query ends on its verb. A plural noun ends in "s",
        # a base-form verb does not ("How do workflows replay events?" has no verb found).
        return run[-1]
    return None


def is_plural(phrase: str) -> bool:
    last = phrase.split()[-1].lower() if phrase.split() else ""
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ics"))


def verb_be(phrase: str) -> str:
    return "are" if is_plural(phrase) else "is"


def verb_do(phrase: str) -> str:
    return "do" if is_plural(phrase) else "does"


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def third_person(verb: str) -> str:
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def facet_questions(query: str, analysis: QueryAnalysis) -> list[str]:
    subject = analysis.subject
    be, do = verb_be(subject), verb_do(subject)
    questions: list[str] = []
    as_asked = capitalise(collapse(query).rstrip("?!. "))
    if analysis.is_question and as_asked:
        # The researcher's own question, most important first; it already names its subject.
        questions.append(as_asked + "?")
    if not subject:
        topic = f'"{as_asked}"' if as_asked else "the research question"
        return [
            *questions,
            f"What background do the sources give on {topic}?",
            f"What limits and risks do the sources mention for {topic}?",
            f"What examples do the sources give for {topic}?",
        ]
    if analysis.compared:
        first, second = analysis.compared
        questions += [
            f"How {verb_do(first)} {first} compare with {second}?",
            f"What {verb_be(first)} {first}?",
            f"What {verb_be(second)} {second}?",
            f"When {verb_be(first)} {first} a better choice than {second}?",
            f"What are the trade-offs and limits of {first}?",
            f"What are the trade-offs and limits of {second}?",
        ]
        return questions
    questions.append(f"What {be} {subject}?")
    if analysis.focus and analysis.wh_word == "why":
        # "Why do activities need idempotency keys?" is answered by what goes wrong without.
        questions.append(f"What would happen if {subject} did not {analysis.focus}?")
    elif analysis.focus:
        questions.append(f"What mechanism lets {subject} {analysis.focus}?")
    else:
        questions.append(f"How {do} {subject} work?")
    questions += [f"How {do} {subject} relate to {other}?" for other in analysis.others[:2]]
    questions += [
        f"What are the trade-offs and limits of {subject}?",
        f"What failure modes and risks affect {subject}?",
        f"What are practical examples of {subject} in use?",
    ]
    return questions


def ordered_unique_questions(questions: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for question in questions:
        seen.setdefault(question.lower(), question)
    return list(seen.values())


def question_heading(question: str, *, title: str) -> str:
    """A section heading made from a sub-question by fixed rules, without the question form.

    "What are the limits of sagas?" -> "Limits of sagas"; "How do durable timers survive
    restarts?" -> "How durable timers survive restarts"; "How do sagas compare with 2PC?" ->
    "Sagas versus 2PC". A question no rule fits keeps its words and loses its question mark.
    """
    text = collapse(question).rstrip("?!. ")
    words = text.split()
    analysis = analyse_query(text)
    if len(words) > 2 and words[0].lower() == "what" and words[1].lower() in ("is", "are"):
        rest = words[3:] if words[2].lower() in ("a", "an", "the") and len(words) > 3 else words[2:]
        # "What is Dapr used for": the subject ends before "used", which word lists cannot
        # tell, so a question ending on a function word keeps its form.
        heading = text if rest[-1].lower() in STOP_WORDS else " ".join(rest)
    elif analysis.compared:
        first, second = analysis.compared
        heading = f"{first} versus {second}"
    else:
        heading = statement_form(analysis) or text
    words = heading.split()
    if len(words) > HEADING_MAX_WORDS:
        words = words[:HEADING_MAX_WORDS]
        while len(words) > 1 and words[-1].lower().strip(",;:") in STOP_WORDS:
            words.pop()
        heading = " ".join(words).rstrip(",;:")
    heading = capitalise(heading) or "Findings"
    # The plan usually leads with the research question itself, which the title already says.
    return "Main findings" if heading.lower() == title.lower() else heading


def report_title(query: str) -> str:
    analysis = analyse_query(query)
    if analysis.compared:
        first, second = analysis.compared
        return capitalise(f"{first} versus {second}")
    if statement := statement_form(analysis):
        return statement
    if not analysis.subject:
        return capitalise(collapse(query).rstrip("?!. ")) or "Research report"
    return f"{capitalise(analysis.subject)}: What the Sources Say"


def statement_form(analysis: QueryAnalysis) -> str | None:
    """The question "How do X recover from Y?" as "How X recover from Y", if its verb is found."""
    if not (analysis.focus and analysis.wh_word in ("how", "why") and analysis.auxiliary):
        return None
    verb, _, rest = analysis.focus.partition(" ")
    if analysis.auxiliary == "does":
        verb = third_person(verb)
    elif analysis.auxiliary != "do":
        verb = f"{analysis.auxiliary} {verb}"
    phrase = " ".join(part for part in (analysis.wh_word, analysis.subject, verb, rest) if part)
    return capitalise(phrase)
