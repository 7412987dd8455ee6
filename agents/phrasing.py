"""Reading a research question and phrasing questions, headings and titles from it.

The offline agents have no language model, so they phrase by rule. A query is cut into
clauses ("How does X decide Y, and what happens when Z?" is two), and each clause is read
by its shape:

- "How/Why/When does <subject> <verb> <rest>?": a process, phrased around its verb;
- "What is <topic>?", "Is <topic> <predicate>?", "How are <topic> <participle> ...?";
- "What happens/causes ...?", "Which <topic> <verb> ...?": already a noun clause;
- "X vs Y", "between X and Y", "How do X and Y differ?": a comparison;
- anything else: key words, phrased as topics.

Word lists stand in for a part-of-speech tagger. The hard part is where the subject ends
and the verb begins ("How does Dapr decide which ..."): a verb is taken only where the
words before it can be a noun phrase, and a word that is as often a noun ("state",
"store", "replay") yields to a verb right after it ("Dapr state store work"). When no rule
fits, the clause keeps its own words, which is always safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fte.text import GENERIC_WORDS, STOP_WORDS, collapse

HEADING_MAX_WORDS = 12

_WH_WORDS = frozenset("how what why when where which who".split())
_DO = frozenset({"do", "does", "did"})
_MODALS = frozenset("can could should would will might must may shall".split())
_BE = frozenset({"is", "are", "was", "were"})
_CLAUSE_STARTERS = _WH_WORDS | _DO | _MODALS | _BE | {"whether"}
_ARTICLES = frozenset({"a", "an", "the"})
_DETERMINERS = _ARTICLES | frozenset(
    "this that these those each every any some my our your its their another all both".split()
)
# Determiners that are never a pronoun: a word right after them is a noun.
_NOUN_MARKERS = _ARTICLES | frozenset("my our your its their another every".split())
_PREPOSITIONS = frozenset(
    """about above across after against along among around as at before behind below
    between beyond by during for from in inside into like near of off on onto out outside
    over per since than through throughout to toward towards under unlike until upon via
    with within without""".split()
)
# Prepositions that open a phrase saying where a question applies: "... in Dapr".
_SCOPE_PREPOSITIONS = frozenset("in for with on across under within inside as".split())
_PERSONAL = frozenset({"i", "we", "you", "one"})
_PRONOUNS = _PERSONAL | {"it", "they"}
_IMPERATIVES = frozenset("explain describe summarise summarize outline discuss show".split())
# Verbs after which the object, not the act, is what to research: "When should I use X?"
_CHOOSING_VERBS = frozenset("use choose pick adopt prefer need avoid".split())
# "What can go wrong when X avoid deadlocks?" says nothing: these verbs are about trouble.
_AVOIDING_VERBS = frozenset("avoid prevent mitigate reduce minimise minimize stop tolerate".split())
# "What causes X?" is answered by how X is prevented rather than how X works.
_CAUSING_VERBS = frozenset("cause trigger produce".split())
# Nouns that measure something: "How does workflow payload size work?" is no question.
_MEASURES = frozenset("size length count number cost latency duration limit limits".split())
# Words that end the subject of "Is/Are <subject> <predicate>?".
_PREDICATE_WORDS = frozenset(
    """possible safe necessary needed required enough useful different similar compatible
    ready available idempotent deterministic consistent reliable atomic stateful stateless
    secure faster slower cheaper worse better good bad free optional mandatory hard easy
    difficult slow fast expensive cheap""".split()
)
# Base-form verbs that are rarely nouns in research questions.
VERBS = frozenset(
    """acknowledge activate assign await bind cancel compact deactivate dispatch elect
    forward inject intercept interoperate listen measure mount poll purge revoke rewind
    sleep throttle trust wake
    achieve affect allow apply avoid become behave bring build cause choose coexist
    collect combine communicate compare compute configure connect consume contain continue
    convert coordinate cope correlate create deal decide deduplicate define degrade delete
    deliver depend deploy describe detect determine differ discover distribute divide do
    emit enable encrypt enforce ensure establish evaluate execute expire expose fail fetch
    find fit follow get give go grow guarantee handle happen help hide identify implement
    improve include increase integrate interact invoke isolate keep know lead let lose
    maintain make manage matter mean migrate minimise minimize mitigate move notify observe
    obtain occur offer pass pause perform persist pick prefer prepare preserve prevent
    produce propagate protect provide publish pull push put reach read rebalance receive
    recognise recognize reconcile recover redeliver reduce refer register reject relate
    rely remain remove rename renew replace replicate represent require resolve restore
    resume retain retrieve return reuse rotate save secure see select send serve share
    shut simplify skip spread start stay stop subscribe succeed support survive suspend
    sync take talk tell terminate tolerate track transfer transform translate trigger
    undo unlock validate verify wait write""".split()
)
# Base-form verbs that are as often nouns ("a state store", "the replay"): a verb only
# when no other verb follows at once.
_NOUN_VERBS = frozenset(
    """access batch block buffer cache call change check checkpoint claim commit control cost crash
    fan fire host index issue lease limit load lock log message monitor need partition patch
    proxy sign snapshot order process query queue record release replay reply report request
    restart result retry route run scale schedule set signal state store stream test time
    timeout trace update upgrade use version work""".split()
)
_ALL_VERBS = VERBS | _NOUN_VERBS
_THIRD_PERSON_IRREGULAR = {"do": "does", "go": "goes", "have": "has", "be": "is"}
_FROM_THIRD_PERSON = {third: base for base, third in _THIRD_PERSON_IRREGULAR.items()}
_DOUBLED_FINAL = frozenset(
    """run set get stop plan ship map drop put cut begin swap step scan log tag pin skip wrap
    commit submit emit omit permit admit control refer occur prefer transfer forget reset
    rerun""".split()
)
_NOT_VERBS_ENDING_IZE = frozenset(
    "size noise enterprise premise promise expertise exercise otherwise precise concise".split()
)
# Singular nouns that end in "s".
_SINGULAR_S = frozenset(
    """atlas bus chaos corpus express jenkins kubernetes news paxos postgres series species
    status""".split()
)
_SURFACE_WORD = re.compile(r"[^\W_][\w'’.+#/-]*")


@dataclass(frozen=True)
class Word:
    text: str
    lower: str
    start: int
    end: int


@dataclass(frozen=True)
class Clause:
    """One question of a query, read into the parts phrasing needs.

    `kind` is one of: "process" (wh + auxiliary + subject + verb), "be" (wh or not, a form
    of "be", subject, predicate), "definition" ("What is X?"), "does" ("What does X do?"),
    "noun-clause" ("What happens ...", "Which X support Y"), "quantity" ("How many X can Y
    run?"), "topic" (key words only).
    """

    text: str
    kind: str
    wh_word: str | None = None
    auxiliary: str | None = None
    subject: str = ""
    verb: str | None = None  # base form; for "be" clauses the predicate's first word
    rest: str = ""  # what follows the verb (process) or the subject (be)
    object: str | None = None  # the noun phrase right after the verb
    scope: str | None = None  # a closing phrase such as "in Dapr" or "for Dapr actors"
    compared: tuple[str, str] | None = None
    others: tuple[str, ...] = ()
    condition: str | None = None  # "a host fails" in "What happens when a host fails?"
    condition_word: str | None = None  # "when" or "if"

    @property
    def personal(self) -> bool:
        """Whether the subject is the asker ("How do I ...", "When should we ...")."""
        return self.subject.lower() in _PERSONAL

    @property
    def topic(self) -> str:
        """What the clause is about, as a noun phrase ("" when it has none)."""
        if self.kind == "noun-clause" and self.verb and not self.subject:
            return self.object or ""  # "What causes <X>?"
        if self.personal or self.subject.lower() in _PRONOUNS:
            return self.object or ""
        return self.subject


@dataclass(frozen=True)
class QueryAnalysis:
    """The parts of a query that the planner and writer phrase their questions around."""

    subject: str
    focus: str | None = None  # verb phrase in base form: "recover from crashes"
    auxiliary: str | None = None
    wh_word: str | None = None
    others: tuple[str, ...] = ()
    compared: tuple[str, str] | None = None
    is_question: bool = False
    clauses: tuple[Clause, ...] = ()


# -- words ----------------------------------------------------------------------------


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


def _is_noun_word(word: Word) -> bool:
    """A word that can sit inside a noun phrase: not a function word, not a sure verb."""
    return word.lower not in STOP_WORDS and not (word.lower in VERBS and word.text.islower())


def _span(text: str, words: Sequence[Word]) -> str:
    return text[words[0].start : words[-1].end]


def _gap(text: str, left: Word, right: Word) -> str:
    return text[left.end : right.start]


def is_plural(phrase: str) -> bool:
    """Whether a noun phrase takes "are": its head (before any preposition) is plural."""
    words = phrase.split()
    head: list[str] = []
    for word in words:
        if head and word.lower() in _PREPOSITIONS:
            break
        head.append(word)
    if len(head) > 1 and any(word.lower() in ("and", "or") for word in head[1:]):
        return True  # "timers and reminders"
    last = head[-1] if head else ""
    if not last or last[-1] == "S" or last.lower() in _SINGULAR_S:
        return False  # an acronym ("mTLS") or a name ("Kubernetes")
    last = last.lower()
    return last.endswith("s") and not last.endswith(("ss", "us", "is"))


def verb_be(phrase: str) -> str:
    return "are" if is_plural(phrase) else "is"


def verb_do(phrase: str) -> str:
    return "do" if is_plural(phrase) else "does"


def capitalise(text: str) -> str:
    first = text.split(" ", 1)[0]
    if any(char.isupper() for char in first[1:]):
        return text  # "mTLS", "gRPC", "eBPF" keep their case
    return text[:1].upper() + text[1:]


def _uncapitalise(text: str) -> str:
    first = text.split(" ", 1)[0]
    if len(first) > 1 and first[1:].islower() and first[:1].isupper():
        return text[:1].lower() + text[1:]
    return text


def third_person(verb: str) -> str:
    if verb in _THIRD_PERSON_IRREGULAR:
        return _THIRD_PERSON_IRREGULAR[verb]
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if len(verb) > 2 and verb.endswith("y") and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def gerund(verb: str) -> str:
    if verb in ("be", "see", "free", "agree"):
        return verb + "ing"
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    if verb in _DOUBLED_FINAL:
        return verb + verb[-1] + "ing"
    return verb + "ing"


def base_of_third_person(word: str) -> str | None:
    """The base form of a known verb's third-person form ("decides" -> "decide"), if it is one."""
    if word in _FROM_THIRD_PERSON:
        return _FROM_THIRD_PERSON[word]
    if not word.endswith("s") or word.endswith("ss"):
        return None
    candidates = [word[:-1]]
    if word.endswith("es"):
        candidates.append(word[:-2])
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    return next((c for c in candidates if c in _ALL_VERBS or _verb_by_suffix(c)), None)


def _verb_by_suffix(word: str) -> bool:
    """Whether a suffix makes `word` a verb: "serialize", "synchronise", "notify"."""
    return (
        len(word) > 5 and word.endswith(("ize", "ise", "ify")) and word not in _NOT_VERBS_ENDING_IZE
    )


def _is_base_verb(word: Word) -> bool:
    return word.text.islower() and (word.lower in _ALL_VERBS or _verb_by_suffix(word.lower))


# -- clauses ----------------------------------------------------------------------------


def split_clauses(query: str) -> list[str]:
    """The questions of a query: "X?, and what happens when Y" -> ["X", "what happens when Y"].

    A new clause starts after "?" or ";", and at "and"/"or"/"but" when a question word or
    an auxiliary follows ("..., and what happens", "... and can it ..."). A clause that is
    one function word ("..., and why?") adds nothing and is dropped.
    """
    text = collapse(query)
    words = split_words(text)
    starts = [0]
    for index in range(1, len(words)):
        word, previous = words[index], words[index - 1]
        following = words[index + 1].lower if index + 1 < len(words) else ""
        if any(mark in _gap(text, previous, word) for mark in "?;"):
            starts.append(word.start)
        elif word.lower in ("and", "or", "but") and following in _CLAUSE_STARTERS:
            starts.append(words[index + 1].start)
    clauses = []
    for begin, end in zip(starts, [*starts[1:], len(text)], strict=True):
        clause = text[begin:end].strip()
        clause = re.sub(r"[\s,;:?!.]*(?:\b(?:and|or|but))?[\s,;:?!.]*$", "", clause)
        if len(clause.split()) > 1 or clause.lower() not in STOP_WORDS or len(starts) == 1:
            clauses.append(clause)
    return clauses or [text.rstrip("?!. ")]


def analyse_clause(clause: str) -> Clause:
    text = collapse(clause).rstrip("?!.,;: ")
    words = split_words(text)
    if not words:
        return Clause(text=text, kind="topic")
    lowers = [word.lower for word in words]
    if lowers[0] in _IMPERATIVES and len(words) > 1:
        # "Explain how X works" is the question "how X works"; "Describe X" is the topic X.
        rest = words[2:] if lowers[1] == "me" and len(words) > 2 else words[1:]
        inner = analyse_clause(text[rest[0].start :])
        return inner
    compared = _comparison(text, words)
    wh = lowers[0] if lowers[0] in _WH_WORDS else None
    at = 1 if wh else 0
    after = lowers[at] if at < len(lowers) else ""
    base = Clause(text=text, kind="topic", wh_word=wh, compared=compared)
    if wh == "how" and after in ("many", "much") and at + 1 < len(words):
        # "How many actors can a single host run?"
        end = _noun_phrase_end(text, words, at + 1)
        if at + 1 < end < len(words) and words[end].lower in _DO | _MODALS:
            amount = _span(text, words[at + 1 : end])
            inner = _process(_with(base, wh_word=f"how {after} {amount}"), text, words, end)
            if inner.verb:
                return _with(inner, kind="quantity", object=amount, others=())
        return _topic(base, text, words[at + 1 :])
    if wh == "how" and after in ("often", "long", "far"):
        return _topic(base, text, words[at + 1 :])
    if after in _DO or after in _MODALS:
        return _process(base, text, words, at)
    if after in _BE and at + 1 < len(words):
        return _be(base, text, words, at)
    if wh and at < len(words):
        return _noun_clause(base, text, words, at)
    return _topic(base, text, words)


def _process(base: Clause, text: str, words: list[Word], at: int) -> Clause:
    """A clause "[wh] <aux> <subject> <verb> <rest>": "How does Dapr decide which ..."."""
    auxiliary = words[at].lower
    span = words[at + 1 :]
    clause = _with(base, kind="process", auxiliary=auxiliary)
    if not span:
        return clause
    if base.wh_word == "what" and auxiliary in _DO and span[-1].lower == "do" and len(span) > 1:
        # "What does the Sentry service do?": a question about what the subject is for.
        return _with(clause, kind="does", subject=_span(text, span[:-1]))
    number = {"do": True, "does": False}.get(auxiliary)
    verb_at = _verb_index(span, finite=False, allow_be=auxiliary in _MODALS, plural=number)
    if verb_at is None:
        subject_end = _noun_phrase_end(text, span, 0)
        subject = _span(text, span[:subject_end]) if subject_end else ""
        return _with(clause, subject=subject, others=_other_topics(text, span[subject_end:]))
    return _with_verb(clause, text, span, verb_at, verb=span[verb_at].lower)


def _with_verb(clause: Clause, text: str, span: list[Word], verb_at: int, *, verb: str) -> Clause:
    subject = _span(text, span[:verb_at])
    rest_words = span[verb_at + 1 :]
    rest = _span(text, rest_words) if rest_words else ""
    compared = clause.compared
    if verb in ("differ", "compare") and compared is None:
        compared = _split_pair(subject, "and")  # "How do sagas and two-phase commit differ?"
        if compared is None and rest_words and rest_words[0].lower in ("from", "with", "to"):
            # "How does an actor reminder differ from a timer?"
            other_end = _noun_phrase_end(text, rest_words, 1)
            if other_end > 1:
                compared = (subject, _span(text, rest_words[1:other_end]))
    obj_end = _noun_phrase_end(text, rest_words, 0)
    if verb in _CHOOSING_VERBS and compared is None and obj_end:
        # "Should I use Dapr workflows or Temporal?"
        compared = _split_pair(_span(text, rest_words[:obj_end]), "or")
    return _with(
        clause,
        subject=subject,
        verb=verb,
        rest=rest,
        object=_span(text, rest_words[:obj_end]) if obj_end else None,
        scope=_scope(text, rest_words),
        compared=compared,
    )


def _be(base: Clause, text: str, words: list[Word], at: int) -> Clause:
    """A clause "What is X?", "Is X possible with Y?", "How are X configured in Y?"."""
    auxiliary = words[at].lower
    span = words[at + 1 :]
    if base.wh_word in ("what", "which", "who"):
        subject = _span(text, span)
        return _with(base, kind="definition", auxiliary=auxiliary, subject=subject)
    end = _noun_phrase_end(text, span, 0, predicate_stops=True)
    if not end:
        return _with(base, kind="be", auxiliary=auxiliary)
    rest_words = span[end:]
    return _with(
        base,
        kind="be",
        auxiliary=auxiliary,
        subject=_span(text, span[:end]),
        verb=rest_words[0].lower if rest_words else None,
        rest=_span(text, rest_words) if rest_words else "",
        scope=_scope(text, rest_words),
    )


def _noun_clause(base: Clause, text: str, words: list[Word], at: int) -> Clause:
    """A clause "What happens when ...", "What causes X", "Which X support Y", "how X works"."""
    first = words[at]
    following = words[at + 1] if at + 1 < len(words) else None
    if base.wh_word in ("which", "what"):
        # "Which consistency models do Dapr state stores offer?": an object question.
        end = _noun_phrase_end(text, words, at)
        if at < end < len(words) and words[end].lower in _DO | _MODALS:
            chosen = _span(text, words[at:end])
            inner = _process(_with(base, wh_word=f"{base.wh_word} {chosen}"), text, words, end)
            if inner.verb:
                return _with(inner, object=inner.object or chosen)
    verb = base_of_third_person(first.lower) if first.text.islower() else None
    if base.wh_word == "who" and verb is None and first.lower.endswith("s"):
        verb = first.lower[:-1]  # "Who assigns ...": after "who" comes a verb
    if (
        verb
        and base.wh_word in ("what", "who", "which")
        and not (following and _is_base_verb(following))
    ):
        # "What causes X?": the question word is the subject.
        rest_words = words[at + 1 :]
        clause = _with(base, kind="noun-clause", verb=verb)
        if verb == "happen":
            return _happens(clause, text, rest_words)
        obj_end = _noun_phrase_end(text, rest_words, 0, of_phrase=True)
        obj = _of_phrase_subject(text, rest_words[:obj_end]) if obj_end else None
        return _with(
            clause,
            rest=_span(text, rest_words) if rest_words else "",
            object=obj,
            scope=_scope(text, rest_words),
            others=_other_topics(text, rest_words[obj_end:]),
        )
    span = words[at:]
    verb_at = _verb_index(span, finite=True)
    if verb_at is None:
        return _topic(base, text, span)
    verb_word = span[verb_at]
    verb = base_of_third_person(verb_word.lower) or verb_word.lower
    if base.wh_word in ("what", "which", "who"):
        # "Which state stores support transactions?": subject, verb and object in order.
        return _with_verb(_with(base, kind="noun-clause"), text, span, verb_at, verb=verb)
    # "how Dapr actors handle concurrency" (after "Explain"): a process in statement order.
    auxiliary = "do" if verb == verb_word.lower else "does"
    return _with_verb(
        _with(base, kind="process", auxiliary=auxiliary), text, span, verb_at, verb=verb
    )


def _happens(clause: Clause, text: str, words: list[Word]) -> Clause:
    """The parts of "What happens [to X] [when|if Y]?"."""
    lowers = [word.lower for word in words]
    subject = ""
    condition_at = next((i for i, w in enumerate(lowers) if w in ("when", "if", "after")), None)
    if lowers[:1] == ["to"]:
        end = _noun_phrase_end(text, words, 1)
        if end > 1:
            subject = _span(text, words[1:end])
    condition = None
    if condition_at is not None and condition_at + 1 < len(words):
        condition = _span(text, words[condition_at + 1 :])
    return _with(
        clause,
        object=subject or None,
        rest=_span(text, words) if words else "",
        condition=condition,
        condition_word=lowers[condition_at] if condition_at is not None else None,
        scope=_scope(text, words),
    )


def _topic(base: Clause, text: str, words: list[Word]) -> Clause:
    runs = _runs(text, words)
    if not runs:
        return _with(base, kind="topic")
    first, later = runs[0], runs[1:]
    of_object = later[0] if later and _joined_by(text, first, later[0], "of") else None
    if of_object is not None:
        later = later[1:]
    subject = _subject_with_of(text, words, _strip_leading_verbs(first), of_object)
    return _with(
        base,
        kind="topic",
        subject=subject,
        others=tuple(_span(text, run) for run in later),
    )


def _with(clause: Clause, **changes: Any) -> Clause:
    return replace(clause, **changes)


def _verb_index(
    span: Sequence[Word], *, finite: bool, allow_be: bool = False, plural: bool | None = None
) -> int | None:
    """Where the verb after the subject is in `span` ("Dapr decide which ..." -> 1).

    Only a position after a possible noun phrase counts: the words before it must be
    nouns, adjectives, determiners, names, "and"/"or"/"of" or a personal pronoun, so a
    clause with no clear subject ("go wrong when ...") yields no verb rather than a wrong
    one. A word that is as often a noun is passed over when a verb follows at once. With
    `plural` (after "do" or "does"), a verb whose subject agrees in number comes first:
    "do Dapr state stores offer" has its verb at "offer", not at "state".
    """
    candidates: list[int] = []
    for index, word in enumerate(span):
        if index == 0:
            if word.lower in VERBS and word.text.islower():
                return None  # "What would happen if ...": no subject before the verb
            continue
        previous = span[index - 1]
        if not _can_precede_verb(span[:index]):
            break
        if previous.lower in _NOUN_MARKERS or previous.lower in _PREPOSITIONS:
            continue  # "the replay", "of state": a noun follows
        if not _verb_form(word, finite=finite, allow_be=allow_be):
            continue
        following = span[index + 1] if index + 1 < len(span) else None
        if word.lower in _NOUN_VERBS or (base_of_third_person(word.lower) or "") in _NOUN_VERBS:
            if following is not None and _verb_form(following, finite=finite, allow_be=False):
                continue  # "workflow replay work", "state stores support"
        candidates.append(index)
    if plural is not None:
        agreeing = [i for i in candidates if _agrees(span[:i], plural=plural)]
        if agreeing:
            return agreeing[0]
    if candidates:
        return candidates[0]
    if finite or len(span) < 2:
        return None
    # "How do workflows replay?": a query may end on a verb no list knows.
    last = span[-1]
    if (
        _can_precede_verb(span[:-1])
        and last.text.islower()
        and _is_key(last)
        and not is_plural(last.text)
        and span[-2].lower not in _DETERMINERS | _PREPOSITIONS
    ):
        return len(span) - 1
    return None


def _agrees(subject: Sequence[Word], *, plural: bool) -> bool:
    phrase = " ".join(word.text for word in subject)
    if phrase.lower() in _PRONOUNS:
        return plural == (phrase.lower() != "it")
    return is_plural(phrase) == plural


def _can_precede_verb(words: Sequence[Word]) -> bool:
    allowed = _DETERMINERS | _PRONOUNS | {"and", "or", "of", "each"}
    return all(w.lower not in STOP_WORDS or w.lower in allowed for w in words)


def _verb_form(word: Word, *, finite: bool, allow_be: bool) -> bool:
    if not word.text.islower():
        return False
    if allow_be and word.lower == "be":
        return True
    if _is_base_verb(word):
        return True
    return finite and base_of_third_person(word.lower) is not None


def _noun_phrase_end(
    text: str,
    words: Sequence[Word],
    start: int,
    *,
    predicate_stops: bool = False,
    of_phrase: bool = False,
) -> int:
    """The end (exclusive) of the noun phrase at `words[start]`, or `start` if there is none.

    Takes a determiner, noun words, and coordination ("retries, timeouts and circuit
    breakers"); with `of_phrase`, also "of <noun phrase>".
    """

    def noun(index: int) -> bool:
        word = words[index]
        if not _is_noun_word(word):
            return False
        if predicate_stops and index > start:
            # "Is exactly-once delivery possible ...", "Are actors single-threaded?"
            lower = word.lower
            if lower in _PREDICATE_WORDS or lower in GENERIC_WORDS:
                return False
            if word.text.islower() and lower.endswith(("ed", "en")) and len(lower) > 4:
                return False
        return True

    def run_from(index: int) -> int:
        if index < len(words) and words[index].lower in _DETERMINERS:
            index += 1
        end = index
        while end < len(words) and noun(end):
            end += 1
        return end if end > index else -1

    end = run_from(start)
    if end < 0:
        return start
    while end < len(words):
        word = words[end]
        if word.lower in ("and", "or"):
            nxt = run_from(end + 1)
        elif "," in _gap(text, words[end - 1], word):
            nxt = run_from(end)
        elif of_phrase and word.lower == "of":
            nxt = run_from(end + 1)
        else:
            break
        if nxt < 0:
            break
        end = nxt
    return end


def _scope(text: str, words: Sequence[Word]) -> str | None:
    """A closing phrase that says where the question applies: "in Dapr", "as a state store"."""
    for index in range(len(words) - 1, -1, -1):
        if words[index].lower in _PREPOSITIONS:
            if words[index].lower not in _SCOPE_PREPOSITIONS:
                return None
            if _noun_phrase_end(text, words, index + 1) == len(words) > index + 1:
                return _span(text, words[index:])
            return None
    return None


def _split_pair(phrase: str, joiner: str) -> tuple[str, str] | None:
    left, sep, right = phrase.partition(f" {joiner} ")
    return (left.strip(), right.strip()) if sep and left.strip() and right.strip() else None


def _other_topics(text: str, words: Sequence[Word]) -> tuple[str, ...]:
    return tuple(_span(text, run) for run in _runs(text, words))


def _runs(text: str, words: Sequence[Word]) -> list[list[Word]]:
    """Maximal runs of adjacent key words: "durable workflows recover", "crashes"."""
    runs: list[list[Word]] = []
    current: list[Word] = []
    for word in words:
        adjacent = bool(current) and not _gap(text, current[-1], word).strip()
        if _is_key(word) and (adjacent or not current):
            current.append(word)
            continue
        if current:
            runs.append(current)
        current = [word] if _is_key(word) else []
    if current:
        runs.append(current)
    return runs


def _strip_leading_verbs(run: list[Word]) -> list[Word]:
    while len(run) > 1 and run[0].lower in VERBS:
        run = run[1:]
    return run


def _joined_by(text: str, left: list[Word], right: list[Word], *joiners: str) -> bool:
    """Whether only a joiner ("of", "and"), perhaps with an article, lies between two runs."""
    between = _gap(text, left[-1], right[0]).lower().split()
    if len(between) == 2 and between[1] in _ARTICLES:
        between = between[:1]
    return len(between) == 1 and between[0] in joiners


def _with_article(text: str, words: Sequence[Word], head: Sequence[Word], phrase: str) -> str:
    index = words.index(head[0])
    article = words[index - 1].lower if index else ""
    return f"{words[index - 1].text} {phrase}" if article in _ARTICLES else phrase


def _subject_with_of(
    text: str, words: Sequence[Word], head: list[Word], of_object: list[Word] | None
) -> str:
    """The subject phrase, keeping its article and an of-phrase with its noun.

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


def _of_phrase_subject(text: str, words: Sequence[Word]) -> str:
    """A noun phrase with an of-phrase, as `_subject_with_of` phrases it."""
    runs = _runs(text, words)
    if len(runs) == 2 and _joined_by(text, runs[0], runs[1], "of"):
        return _subject_with_of(text, words, runs[0], runs[1])
    return _span(text, words)


def _comparison(text: str, words: list[Word]) -> tuple[str, str] | None:
    """The two sides of "X vs Y", "compare X with Y", "X instead of Y", "between X and Y"."""
    lowers = [word.lower for word in words]
    for index, lower in enumerate(lowers):
        following = lowers[index + 1] if index + 1 < len(lowers) else ""
        if lower in ("vs", "versus"):
            left, right = words[:index], words[index + 1 :]
        elif lower.startswith("compar") and "with" in lowers[index + 1 :] and index == 0:
            joint = lowers.index("with", index + 1)
            left, right = words[index + 1 : joint], words[joint + 1 :]
        elif lower.startswith("compar") and "to" in lowers[index + 1 :] and index == 0:
            joint = lowers.index("to", index + 1)
            left, right = words[index + 1 : joint], words[joint + 1 :]
        elif lower.startswith("compar") and following in ("to", "with", "against"):
            left, right = words[:index], words[index + 2 :]
        elif lower == "instead" and following == "of":
            left, right = words[:index], words[index + 2 :]
        elif lower == "between" and "and" in lowers[index + 1 :]:
            joint = lowers.index("and", index + 1)
            left, right = words[index + 1 : joint], words[joint + 1 :]
            return _distributed(text, left, right)
        else:
            continue
        left_runs, right_runs = _runs(text, left), _runs(text, right)
        if left_runs and right_runs:
            first = _strip_leading_verbs(left_runs[-1])
            second = _strip_leading_verbs(right_runs[0])
            return (
                _with_article(text, words, first, _span(text, first)),
                _with_article(text, words, second, _span(text, second)),
            )
    return None


def _distributed(text: str, left: list[Word], right: list[Word]) -> tuple[str, str] | None:
    """The sides of "between input and output bindings": "input bindings", "output bindings"."""
    left_end = _noun_phrase_end(text, left, 0)
    right_end = _noun_phrase_end(text, right, 0)
    if not left_end or not right_end:
        return None
    first, second = left[:left_end], right[:right_end]
    if len(first) == 1 and len(second) > 1 and not is_plural(first[0].text):
        if first[0].text.islower() and first[0].lower not in _DETERMINERS:
            return f"{first[0].text} {second[-1].text}", _span(text, second)
    return _span(text, first), _span(text, second)


def _comparison_scope(clause: Clause) -> str:
    """The phrase after the second side of a comparison: "... PostgreSQL as a state store".

    Or the clause's own scope when it names neither side: "How do timers and reminders
    differ for Dapr actors?".
    """
    if not clause.compared:
        return ""
    first, second = clause.compared
    if clause.scope and first not in clause.scope and second not in clause.scope:
        return f" {clause.scope}"
    tail = clause.text.split(second, 1)[1] if second in clause.text else ""
    words = split_words(tail)
    if not words or words[0].lower not in _SCOPE_PREPOSITIONS:
        return ""
    if _noun_phrase_end(tail, words, 1) != len(words):
        return ""
    return " " + _span(tail, words)


# -- the whole query --------------------------------------------------------------------


def analyse_query(query: str) -> QueryAnalysis:
    text = collapse(query)
    clauses = tuple(analyse_clause(clause) for clause in split_clauses(text))
    first = clauses[0]
    focus = f"{first.verb} {first.rest}".strip() if first.kind == "process" and first.verb else None
    return QueryAnalysis(
        subject=first.topic,
        focus=focus,
        auxiliary=first.auxiliary,
        wh_word=first.wh_word,
        others=first.others,
        compared=first.compared,
        is_question=text.endswith("?") or text.split(" ", 1)[0].lower() in _CLAUSE_STARTERS,
        clauses=clauses,
    )


def facet_questions(query: str, analysis: QueryAnalysis) -> list[str]:
    """The researcher's own questions first, then standard research facets of the first one."""
    clauses = analysis.clauses or (analyse_clause(query),)
    first = clauses[0]
    questions: list[str] = []
    if analysis.is_question and len(clauses) == 1:
        questions.append(_as_question(collapse(query)))
    elif analysis.is_question:
        questions += [_as_question(_resolved(clause, first)) for clause in clauses]
    elif first.kind == "process" and first.verb and first.wh_word:
        # "Explain how Dapr actors handle concurrency" asks "How do Dapr actors ...?"
        do = "do" if first.auxiliary == "do" else "does"
        questions.append(
            _as_question(f"{first.wh_word} {do} {first.subject} {first.verb} {first.rest}")
        )
    if first.compared:
        return questions + _comparison_facets(first)
    topic = first.topic
    if first.kind == "process" and first.verb:
        questions += _process_facets(first)
    elif first.kind == "quantity" and first.object:
        questions += _noun_facets(first, first.object)
    elif first.kind == "noun-clause" and first.verb == "happen":
        questions += _happens_facets(first)
    elif first.kind == "noun-clause" and first.verb and first.subject:
        questions += _which_facets(first)
    elif first.kind == "noun-clause" and first.verb in _CAUSING_VERBS and topic:
        scope = f" {first.scope}" if first.scope and first.scope not in topic else ""
        questions += [
            _definition(topic),
            f"How can {topic} be prevented?",
            f"How can {topic} be detected and fixed?",
            f"What are practical examples of {topic}{scope}?",
        ]
    elif first.kind == "definition" and (aspect := _aspect_of(topic)):
        # "What are the limits on workflow payload size?" is about payload size.
        about, about_scope = aspect
        questions += _noun_facets(_with(first, subject=about, scope=about_scope), about)
    elif topic:
        questions += _noun_facets(first, topic)
    if len(ordered_unique_questions(questions)) < 3:
        # Nothing but function words ("how does it work?"): the query itself is the topic.
        as_asked = capitalise(collapse(query).rstrip("?!. "))
        subject = f'"{as_asked}"' if as_asked else "the research question"
        questions += [
            f"What background do the sources give on {subject}?",
            f"What limits and risks do the sources mention for {subject}?",
            f"What examples do the sources give for {subject}?",
        ]
    return questions


def _aspect_of(phrase: str) -> tuple[str, str | None] | None:
    """The topic, and its scope, of a phrase that a research facet leads.

    "the limits on workflow payload size" -> ("workflow payload size", None); "the role of
    the placement service in actor activation" -> ("the placement service", "in actor
    activation").
    """
    words = split_words(phrase)
    for index, word in enumerate(words[:-1]):
        if word.lower in _PREPOSITIONS:
            if not _is_generic(_span(phrase, words[:index])):
                return None
            end = _noun_phrase_end(phrase, words, index + 1)
            if end == index + 1:
                return None
            topic = _span(phrase, words[index + 1 : end])
            return topic, _scope(phrase, words[end:]) if end < len(words) else None
    return None


def _is_generic(phrase: str) -> bool:
    """Whether a phrase only names a research facet: "the risks", "limits", "the pros and cons"."""
    words = [w.lower() for w in phrase.split() if w.lower() not in _DETERMINERS]
    return bool(words) and all(w in GENERIC_WORDS or w in ("and", "or") for w in words)


def _as_question(text: str) -> str:
    return capitalise(collapse(text).rstrip("?!.,;: ")) + "?"


def _is_name(phrase: str) -> bool:
    """A bare name ("Dapr", "Redis"): too broad a topic for "limits of ..." questions."""
    words = phrase.split()
    return len(words) == 1 and not words[0].islower()


def _definition(phrase: str) -> str:
    """The question "What is X?", leaving out a participle that only says which X."""
    words = phrase.split()
    if len(words) > 2 and words[0].lower() in _ARTICLES and words[1].lower().endswith("ing"):
        phrase = " ".join([words[0], *words[2:]])
    return f"What {verb_be(phrase)} {phrase}?"


def _noun_facets(clause: Clause, topic: str, *, define: bool = True) -> list[str]:
    scope = f" {clause.scope}" if clause.scope and clause.scope not in topic else ""
    do = verb_do(topic)
    questions = [_definition(topic)] if define else []
    if topic.split()[-1].lower() not in _MEASURES:
        questions.append(f"How {do} {topic} work{scope}?")
    others = [other for other in clause.others if other not in (clause.scope or "")]
    questions += [f"How {do} {topic} relate to {other}?" for other in others[:2]]
    questions += [
        f"What are the trade-offs and limits of {topic}{scope}?",
        f"What failure modes and risks affect {topic}{scope}?",
        f"What are practical examples of {topic} in use?",
    ]
    return questions


def _statement(clause: Clause) -> str:
    """The process "Dapr decides which sidecar hosts an actor" (no question word)."""
    verb = clause.verb or ""
    if clause.auxiliary in _MODALS or clause.auxiliary == "do" or is_plural(clause.subject):
        verb_form = verb
    else:
        verb_form = third_person(verb)
    return " ".join(part for part in (clause.subject, verb_form, clause.rest) if part)


def _process_facets(clause: Clause) -> list[str]:
    verb, rest = clause.verb or "", clause.rest
    act = f"{verb} {rest}".strip()
    if clause.subject.lower() in _PRONOUNS - _PERSONAL:
        return []  # "How does it work?": nothing to name
    if clause.personal:
        # "How do I configure a Redis state store in Dapr?": the act itself is the topic.
        obj = clause.object
        doing = _doing(clause)
        if obj and verb in _CHOOSING_VERBS:
            return [
                _definition(obj),
                f"How {verb_do(obj)} {obj} work?",
                f"What can go wrong when {doing}?",
                *_noun_facets(clause, obj, define=False)[1:],
            ]
        questions = [_definition(obj)] if obj else []
        return questions + [
            f"What can go wrong when {doing}?",
            f"What are the trade-offs and limits of {doing}?",
            f"What are practical examples of {doing}?",
        ]
    subject = clause.subject
    questions = [_definition(subject)]
    if clause.object and _is_name(subject):
        questions.append(_definition(clause.object))
    statement = _statement(_with(clause, auxiliary="does"))
    if clause.wh_word == "why":
        # "Why X?" is answered by what goes wrong without it.
        questions.append(_counterfactual(clause))
    elif (clause.wh_word or "").split()[:1] in (["what"], ["which"], ["who"]):
        # "What does Dapr store in ...": the question word is the object, so no statement
        # can be made of the rest.
        if clause.object and not clause.rest:
            questions.append(_definition(clause.object))  # "Which consistency models ..."
        return questions + _noun_facets(_with(clause, scope=None), subject, define=False)
    else:
        questions.append(f"What mechanism lets {subject} {act}?")
        if verb not in _AVOIDING_VERBS:
            questions.append(f"What can go wrong when {statement}?")
    if _is_name(subject):
        questions.append(f"What limits and trade-offs apply when {statement}?")
    else:
        questions += [
            f"What are the trade-offs and limits of {subject}?",
            f"What failure modes and risks affect {subject}?",
            f"What are practical examples of {subject} in use?",
        ]
    return questions


def _doing(clause: Clause) -> str:
    """The act of a clause as a gerund phrase: "configuring a Redis state store in Dapr"."""
    obj = clause.object
    doing = " ".join(part for part in (gerund(clause.verb or ""), obj or clause.rest) if part)
    if obj and clause.scope and clause.scope not in obj:
        doing += f" {clause.scope}"
    return doing


def _counterfactual(clause: Clause) -> str:
    """What the "why" is for: "Why do activities need to be idempotent?" -> "... were not ..."."""
    subject, verb, rest = clause.subject, clause.verb or "", clause.rest
    if verb == "need" and rest.startswith("to be "):
        be = "were" if is_plural(subject) else "was"
        return f"What would happen if {subject} {be} not {rest.removeprefix('to be ')}?"
    if verb == "need" and clause.object and clause.object == rest:
        return f"What would happen if {subject} had no {clause.object}?"
    return f"What would happen if {subject} did not {verb} {rest}".rstrip() + "?"


def _happens_facets(clause: Clause) -> list[str]:
    topic = clause.object
    if topic and clause.condition:
        return [
            _definition(topic),
            f"How {verb_do(topic)} {topic} behave {clause.condition_word} {clause.condition}?",
            f"What failure modes and risks affect {topic}?",
        ]
    if topic:
        return _noun_facets(clause, topic)
    if not clause.condition:
        return []
    inner = analyse_clause(f"how {clause.condition}")
    if inner.kind == "process" and inner.verb and not inner.personal:
        subject = inner.subject
        return [
            _definition(subject),
            f"What causes {subject} to {inner.verb} {inner.rest}".rstrip() + "?",
            f"What failure modes and risks affect {subject}?",
        ]
    return []


def _which_facets(clause: Clause) -> list[str]:
    subject = clause.subject
    if _is_generic(subject):
        # "What limits apply to actor reminders?" is about actor reminders.
        words = split_words(clause.rest)
        start = next((i for i, w in enumerate(words) if w.lower not in _PREPOSITIONS), 0)
        end = _noun_phrase_end(clause.rest, words, start)
        if end == start:
            return []
        topic = _span(clause.rest, words[start:end])
        return _noun_facets(_with(clause, scope=None, others=()), topic)
    questions = [
        _definition(subject),
        f"How {verb_do(subject)} {subject} {clause.verb} {clause.rest}".rstrip() + "?",
    ]
    return questions + _noun_facets(clause, subject, define=False)[1:]


def _comparison_facets(clause: Clause) -> list[str]:
    assert clause.compared is not None
    first, second = clause.compared
    scope = _comparison_scope(clause)
    # "What are input bindings in Dapr?", not "What is Redis as a Dapr state store?".
    where = scope if scope.split()[:1] == ["in"] else ""
    return [
        f"How {verb_do(first)} {first} compare with {second}{scope}?",
        _definition(first + where),
        _definition(second + where),
        f"When {verb_be(first)} {first} a better choice than {second}{scope}?",
        f"What are the trade-offs and limits of {first}?",
        f"What are the trade-offs and limits of {second}?",
    ]


def _resolved(clause: Clause, first: Clause) -> str:
    """A later clause made self-contained: pronouns replaced, the first clause's scope added.

    "what happens when a host fails" after "How does Dapr decide ..." becomes "what happens
    when a host fails in Dapr".
    """
    text = clause.text
    if clause is first:
        return text
    referent = first.topic
    if referent:
        plural = is_plural(referent)
        text = re.sub(r"\bit\b", referent, text, flags=re.IGNORECASE)
        text = re.sub(r"\bits\b", _possessive(referent), text, flags=re.IGNORECASE)
        if plural:
            text = re.sub(r"\b(?:they|them)\b", referent, text, flags=re.IGNORECASE)
            text = re.sub(r"\btheir\b", _possessive(referent), text, flags=re.IGNORECASE)
            text = re.sub(r"\beach\b(?! of)", f"each of {referent}", text, flags=re.IGNORECASE)
    if clause.kind == "definition" and _is_generic(clause.subject):
        # "..., and what are the risks?": the risks of what the first clause asks about.
        if first.kind == "process" and first.verb and first.topic:
            return (
                f"{text} of {_doing(first)}"
                if first.personal
                else f"{text} when {_statement(first)}"
            )
        return f"{text} of {first.topic}" if first.topic else text
    context = _context(first)
    if context and not _shares_words(text, context):
        text = f"{text} {context}"
    return text


def _possessive(phrase: str) -> str:
    return f"{phrase}'" if phrase.endswith("s") and is_plural(phrase) else f"{phrase}'s"


def _context(clause: Clause) -> str:
    """Where the first clause applies: its closing scope, or "in" a name it mentions."""
    if clause.scope:
        return clause.scope
    words = split_words(clause.text)
    for word in words[1:]:
        if not word.text.islower() and word.lower not in STOP_WORDS and word.text != "I":
            return f"in {word.text}"
    return ""


def _shares_words(text: str, context: str) -> bool:
    wanted = {w.lower for w in split_words(context) if _is_key(w)}
    return bool(wanted & {w.lower for w in split_words(text)})


def ordered_unique_questions(questions: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for question in questions:
        seen.setdefault(question.lower(), question)
    return list(seen.values())


# -- titles and headings -------------------------------------------------------------------


def _headline(clause: Clause, *, alone: bool) -> str | None:
    """A clause in statement form: "How Dapr decides ...", "Whether X is possible ..."."""
    wh = clause.wh_word
    if clause.kind == "definition":
        topic = clause.subject
        words = topic.split()
        if not words or words[-1].lower() in STOP_WORDS:
            return None  # "What is Dapr used for": the subject ends where no list can tell
        if alone:
            return " ".join(words[1:]) if words[0].lower() in _ARTICLES else topic
        return f"{wh} {topic} {clause.auxiliary}"
    if clause.kind == "does":
        return f"what {clause.subject} does"
    if clause.kind in ("noun-clause", "topic"):
        return clause.text if clause.kind == "noun-clause" or not alone else None
    if clause.kind == "be" and clause.subject:
        lead = wh or "whether"
        return f"{lead} {clause.subject} {clause.auxiliary} {clause.rest}".strip()
    if clause.kind not in ("process", "quantity") or not clause.verb:
        return None
    if clause.auxiliary == "did":
        return None
    if clause.personal:
        act = f"{clause.verb} {clause.rest}".strip()
        if wh == "why":
            return f"why {act}"
        return f"{wh or 'whether'} to {act}"
    statement = _statement(clause)
    if clause.auxiliary in _MODALS:
        statement = " ".join(
            part for part in (clause.subject, clause.auxiliary, clause.verb, clause.rest) if part
        )
    return f"{wh or 'whether'} {statement}"


def _headline_of(query: str) -> str | None:
    clauses = [analyse_clause(clause) for clause in split_clauses(query)]
    first = clauses[0]
    comparing = first.kind not in ("process", "be") or first.verb in ("compare", "differ")
    if len(clauses) == 1 and first.compared and comparing:
        one, other = (_without_article(side) for side in first.compared)
        scope = _comparison_scope(first)
        return capitalise(f"{one} versus {other}{scope}")
    parts = [_headline(clause, alone=len(clauses) == 1) for clause in clauses]
    if not parts[0]:
        return None
    rest = [_uncapitalise(part) for part in parts[1:] if part]
    return capitalise(", and ".join([parts[0], *rest]))


def _without_article(phrase: str) -> str:
    first, _, rest = phrase.partition(" ")
    return rest if first.lower() in _ARTICLES and rest else phrase


def report_title(query: str) -> str:
    """The report's title: the query as a statement ("How Dapr decides ..."), or its topic."""
    if headline := _headline_of(query):
        return headline
    analysis = analyse_query(query)
    if analysis.subject:
        return capitalise(_without_article(analysis.subject))
    return capitalise(collapse(query).rstrip("?!. ")) or "Research report"


def question_heading(question: str, *, title: str) -> str:
    """A section heading made from a sub-question by fixed rules, without the question form.

    "What are the limits of sagas?" -> "Limits of sagas"; "How do durable timers survive
    restarts?" -> "How durable timers survive restarts"; "How do sagas compare with 2PC?" ->
    "Sagas versus 2PC". A question no rule fits keeps its words and loses its question mark.
    """
    text = collapse(question).rstrip("?!. ")
    heading = _headline_of(text) or text
    words = heading.split()
    if len(words) > HEADING_MAX_WORDS:
        words = words[:HEADING_MAX_WORDS]
        while len(words) > 1 and words[-1].lower().strip(",;:") in STOP_WORDS:
            words.pop()
        heading = " ".join(words).rstrip(",;:")
    heading = capitalise(heading) or "Findings"
    # The plan usually leads with the research question itself, which the title already says.
    return "Main findings" if heading.lower() == title.lower() else heading
