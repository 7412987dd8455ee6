"""The offline planner's and writer's English: sub-questions, titles and headings.

A table of realistic research queries, each with the title the offline writer gives it,
the sub-questions the offline planner must ask, and the subject those must keep intact;
then rules every query's output must follow (capitalised questions ending in '?', no
doubled words, no verb left dangling on a subject, no boilerplate title).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from fte.agents import phrasing, planner
from fte.contracts import MAX_SUB_QUESTIONS, MIN_SUB_QUESTIONS
from fte.text import sentences

CORPUS_DIR = Path(__file__).resolve().parents[2] / "examples" / "corpus"


@dataclass(frozen=True)
class Case:
    id: str
    query: str
    title: str
    subject: str
    """A phrase of the query that at least two sub-questions must repeat verbatim."""
    asks: tuple[str, ...]
    """Sub-questions the plan must contain; the first is also its first."""


CASES = [
    Case(
        "actor-placement-two-clauses",
        "How does Dapr decide which sidecar hosts an actor, and what happens when a host fails?",
        "How Dapr decides which sidecar hosts an actor, and what happens when a host fails",
        "Dapr",
        (
            "How does Dapr decide which sidecar hosts an actor?",
            "What happens when a host fails in Dapr?",
            "What mechanism lets Dapr decide which sidecar hosts an actor?",
            "What can go wrong when Dapr decides which sidecar hosts an actor?",
        ),
    ),
    Case(
        "actor-concurrency",
        "How do Dapr actors handle concurrency?",
        "How Dapr actors handle concurrency",
        "Dapr actors",
        (
            "How do Dapr actors handle concurrency?",
            "What are Dapr actors?",
            "What mechanism lets Dapr actors handle concurrency?",
            "What are the trade-offs and limits of Dapr actors?",
        ),
    ),
    Case(
        "placement-service-what-is",
        "What is the Dapr placement service?",
        "Dapr placement service",
        "the Dapr placement service",
        (
            "What is the Dapr placement service?",
            "How does the Dapr placement service work?",
            "What failure modes and risks affect the Dapr placement service?",
        ),
    ),
    Case(
        "placement-distributes",
        "How does the placement service distribute actors across hosts?",
        "How the placement service distributes actors across hosts",
        "the placement service",
        (
            "How does the placement service distribute actors across hosts?",
            "What is the placement service?",
            "What can go wrong when the placement service distributes actors across hosts?",
        ),
    ),
    Case(
        "workflow-replay-noun-verb",
        "How does Dapr workflow replay work after a crash?",
        "How Dapr workflow replay works after a crash",
        "Dapr workflow replay",
        (
            "How does Dapr workflow replay work after a crash?",
            "What is Dapr workflow replay?",
            "What are the trade-offs and limits of Dapr workflow replay?",
        ),
    ),
    Case(
        "workflow-sidecar-restart",
        "What happens to a running Dapr workflow when the sidecar restarts?",
        "What happens to a running Dapr workflow when the sidecar restarts",
        "a running Dapr workflow",
        (
            "What happens to a running Dapr workflow when the sidecar restarts?",
            "What is a Dapr workflow?",
            "How does a running Dapr workflow behave when the sidecar restarts?",
            "What failure modes and risks affect a running Dapr workflow?",
        ),
    ),
    Case(
        "state-store-how-do-i",
        "How do I configure a Redis state store in Dapr?",
        "How to configure a Redis state store in Dapr",
        "configuring a Redis state store in Dapr",
        (
            "How do I configure a Redis state store in Dapr?",
            "What is a Redis state store?",
            "What can go wrong when configuring a Redis state store in Dapr?",
            "What are the trade-offs and limits of configuring a Redis state store in Dapr?",
        ),
    ),
    Case(
        "state-stores-which",
        "Which state stores support transactions and ETags in Dapr?",
        "Which state stores support transactions and ETags in Dapr",
        "state stores",
        (
            "Which state stores support transactions and ETags in Dapr?",
            "What are state stores?",
            "How do state stores support transactions and ETags in Dapr?",
            "What are the trade-offs and limits of state stores in Dapr?",
        ),
    ),
    Case(
        "state-stores-object-question",
        "Which consistency models do Dapr state stores offer?",
        "Which consistency models Dapr state stores offer",
        "Dapr state stores",
        (
            "Which consistency models do Dapr state stores offer?",
            "What are Dapr state stores?",
            "What are consistency models?",
            "How do Dapr state stores work?",
        ),
    ),
    Case(
        "pubsub-guarantee",
        "How does Dapr pub/sub guarantee at-least-once delivery?",
        "How Dapr pub/sub guarantees at-least-once delivery",
        "Dapr pub/sub",
        (
            "How does Dapr pub/sub guarantee at-least-once delivery?",
            "What is Dapr pub/sub?",
            "What mechanism lets Dapr pub/sub guarantee at-least-once delivery?",
        ),
    ),
    Case(
        "pubsub-yes-no",
        "Is exactly-once delivery possible with Dapr pub/sub?",
        "Whether exactly-once delivery is possible with Dapr pub/sub",
        "exactly-once delivery",
        (
            "Is exactly-once delivery possible with Dapr pub/sub?",
            "What is exactly-once delivery?",
            "How does exactly-once delivery work with Dapr pub/sub?",
        ),
    ),
    Case(
        "dead-letter-passive-two-clauses",
        "How are dead-letter topics configured in Dapr pub/sub, and what happens to messages "
        "that keep failing?",
        "How dead-letter topics are configured in Dapr pub/sub, and what happens to messages "
        "that keep failing",
        "dead-letter topics",
        (
            "How are dead-letter topics configured in Dapr pub/sub?",
            "What happens to messages that keep failing in Dapr pub/sub?",
            "What are dead-letter topics?",
            "How do dead-letter topics work in Dapr pub/sub?",
        ),
    ),
    Case(
        "bindings-difference",
        "What is the difference between input and output bindings in Dapr?",
        "Input bindings versus output bindings in Dapr",
        "output bindings",
        (
            "What is the difference between input and output bindings in Dapr?",
            "How do input bindings compare with output bindings in Dapr?",
            "What are input bindings in Dapr?",
            "When are input bindings a better choice than output bindings in Dapr?",
        ),
    ),
    Case(
        "bindings-trigger",
        "How do Dapr bindings trigger applications from external systems?",
        "How Dapr bindings trigger applications from external systems",
        "Dapr bindings",
        (
            "How do Dapr bindings trigger applications from external systems?",
            "What are Dapr bindings?",
        ),
    ),
    Case(
        "secret-stores",
        "How do Dapr secret stores keep credentials out of application code?",
        "How Dapr secret stores keep credentials out of application code",
        "Dapr secret stores",
        (
            "How do Dapr secret stores keep credentials out of application code?",
            "What are Dapr secret stores?",
            "What can go wrong when Dapr secret stores keep credentials out of application code?",
        ),
    ),
    Case(
        "secrets-injection-semicolon",
        "How does the Dapr sidecar inject secrets into components; what are the risks?",
        "How the Dapr sidecar injects secrets into components, and what the risks are",
        "the Dapr sidecar",
        (
            "How does the Dapr sidecar inject secrets into components?",
            "What are the risks when the Dapr sidecar injects secrets into components?",
            "What is the Dapr sidecar?",
        ),
    ),
    Case(
        "resiliency-list",
        "How do resiliency policies combine retries, timeouts and circuit breakers in Dapr?",
        "How resiliency policies combine retries, timeouts and circuit breakers in Dapr",
        "resiliency policies",
        (
            "How do resiliency policies combine retries, timeouts and circuit breakers in Dapr?",
            "What are resiliency policies?",
            "What failure modes and risks affect resiliency policies?",
        ),
    ),
    Case(
        "sidecar-why-instead-of",
        "Why does Dapr run as a sidecar instead of a library?",
        "Why Dapr runs as a sidecar instead of a library",
        "a sidecar",
        (
            "Why does Dapr run as a sidecar instead of a library?",
            "How does a sidecar compare with a library?",
            "What is a sidecar?",
            "When is a sidecar a better choice than a library?",
        ),
    ),
    Case(
        "mtls-use",
        "How does Dapr use mTLS to secure service-to-service calls?",
        "How Dapr uses mTLS to secure service-to-service calls",
        "mTLS",
        (
            "How does Dapr use mTLS to secure service-to-service calls?",
            "What is mTLS?",
            "What mechanism lets Dapr use mTLS to secure service-to-service calls?",
            "What limits and trade-offs apply when Dapr uses mTLS to secure "
            "service-to-service calls?",
        ),
    ),
    Case(
        "mtls-rotation-two-clauses",
        "How does Dapr rotate mTLS certificates, and what happens if Sentry is down?",
        "How Dapr rotates mTLS certificates, and what happens if Sentry is down",
        "mTLS certificates",
        (
            "How does Dapr rotate mTLS certificates?",
            "What happens if Sentry is down in Dapr?",
            "What are mTLS certificates?",
        ),
    ),
    Case(
        "sentry-what-does-do",
        "What does the Sentry service do?",
        "What the Sentry service does",
        "the Sentry service",
        (
            "What does the Sentry service do?",
            "What is the Sentry service?",
            "How does the Sentry service work?",
        ),
    ),
    Case(
        "workflow-child-yes-no",
        "Can a Dapr workflow call another workflow as a child?",
        "Whether a Dapr workflow can call another workflow as a child",
        "a Dapr workflow",
        (
            "Can a Dapr workflow call another workflow as a child?",
            "What is a Dapr workflow?",
            "What can go wrong when a Dapr workflow calls another workflow as a child?",
        ),
    ),
    Case(
        "workflow-versioning-how-should-i",
        "How should I version workflow code without breaking running instances?",
        "How to version workflow code without breaking running instances",
        "versioning workflow code",
        (
            "How should I version workflow code without breaking running instances?",
            "What can go wrong when versioning workflow code?",
            "What are the trade-offs and limits of versioning workflow code?",
        ),
    ),
    Case(
        "payload-limits",
        "What are the limits on workflow payload size?",
        "Limits on workflow payload size",
        "workflow payload size",
        (
            "What are the limits on workflow payload size?",
            "What is workflow payload size?",
        ),
    ),
    Case(
        "timers-reminders-two-clauses",
        "How do timers and reminders differ for Dapr actors, and when should each be used?",
        "How timers and reminders differ for Dapr actors, and when each should be used",
        "timers",
        (
            "How do timers and reminders differ for Dapr actors?",
            "When should each of timers and reminders be used for Dapr actors?",
            "How do timers compare with reminders for Dapr actors?",
        ),
    ),
    Case(
        "actors-vs",
        "Dapr actors vs Orleans grains",
        "Dapr actors versus Orleans grains",
        "Orleans grains",
        (
            "How do Dapr actors compare with Orleans grains?",
            "What are Dapr actors?",
            "What are Orleans grains?",
        ),
    ),
    Case(
        "state-store-vs-with-role",
        "Redis vs PostgreSQL as a Dapr state store",
        "Redis versus PostgreSQL as a Dapr state store",
        "PostgreSQL",
        (
            "How does Redis compare with PostgreSQL as a Dapr state store?",
            "When is Redis a better choice than PostgreSQL as a Dapr state store?",
        ),
    ),
    Case(
        "comparing-with",
        "Comparing choreography with orchestration for microservices",
        "Choreography versus orchestration for microservices",
        "orchestration",
        ("How does choreography compare with orchestration for microservices?",),
    ),
    Case(
        "should-i-use-x-or-y",
        "Should I use Dapr workflows or Temporal?",
        "Whether to use Dapr workflows or Temporal",
        "Temporal",
        (
            "Should I use Dapr workflows or Temporal?",
            "How do Dapr workflows compare with Temporal?",
            "When are Dapr workflows a better choice than Temporal?",
        ),
    ),
    Case(
        "x-and-y-differ",
        "How do Raft and Paxos differ?",
        "Raft versus Paxos",
        "Paxos",
        ("How do Raft and Paxos differ?", "How does Raft compare with Paxos?", "What is Paxos?"),
    ),
    Case(
        "why-need-to-be",
        "Why do workflow activities need to be idempotent?",
        "Why workflow activities need to be idempotent",
        "workflow activities",
        (
            "Why do workflow activities need to be idempotent?",
            "What would happen if workflow activities were not idempotent?",
        ),
    ),
    Case(
        "why-need-noun",
        "Why do distributed systems need consensus?",
        "Why distributed systems need consensus",
        "distributed systems",
        (
            "Why do distributed systems need consensus?",
            "What would happen if distributed systems had no consensus?",
        ),
    ),
    Case(
        "what-is-then-pronoun",
        "What is the CAP theorem, and why does it matter for databases?",
        "What the CAP theorem is, and why it matters for databases",
        "the CAP theorem",
        (
            "What is the CAP theorem?",
            "Why does the CAP theorem matter for databases?",
            "How does the CAP theorem work?",
        ),
    ),
    Case(
        "what-causes",
        "What causes nondeterminism errors in Temporal workflows?",
        "What causes nondeterminism errors in Temporal workflows",
        "nondeterminism errors",
        (
            "What causes nondeterminism errors in Temporal workflows?",
            "What are nondeterminism errors?",
            "How can nondeterminism errors be prevented?",
        ),
    ),
    Case(
        "when-should-i-use",
        "When should I use the outbox pattern?",
        "When to use the outbox pattern",
        "the outbox pattern",
        (
            "When should I use the outbox pattern?",
            "What is the outbox pattern?",
            "What can go wrong when using the outbox pattern?",
        ),
    ),
    Case(
        "imperative-explain",
        "Explain how Dapr actors handle concurrency",
        "How Dapr actors handle concurrency",
        "Dapr actors",
        ("How do Dapr actors handle concurrency?", "What are Dapr actors?"),
    ),
    Case(
        "benefits-of",
        "What are the benefits of event sourcing?",
        "Benefits of event sourcing",
        "event sourcing",
        ("What are the benefits of event sourcing?", "What is event sourcing?"),
    ),
    Case(
        "keywords-only",
        "durable timers",
        "Durable timers",
        "durable timers",
        ("What are durable timers?", "How do durable timers work?"),
    ),
    Case(
        "general-cold-climates",
        "How do heat pumps perform in cold climates?",
        "How heat pumps perform in cold climates",
        "heat pumps",
        ("How do heat pumps perform in cold climates?", "What are heat pumps?"),
    ),
    Case(
        "general-x-compared-to-y",
        "What are the pros and cons of microservices compared to a monolith?",
        "Microservices versus monolith",
        "a monolith",
        (
            "What are the pros and cons of microservices compared to a monolith?",
            "How do microservices compare with a monolith?",
            "What is a monolith?",
        ),
    ),
]

# Verbs of the queries above: none may end up inside a subject ("What is Dapr decide?").
QUERY_VERBS = frozenset(
    """decide decides handle configure configured support supports offer guarantee
    guarantees keep combine run runs use uses secure rotate inject differ call version
    distribute distributes trigger perform need matter matters cause causes happen happens
    fail fails restart restarts""".split()
)
# Templates whose blank must be a noun phrase; the first that matches a question applies.
NOUN_SLOTS = [
    re.compile(r"^What are practical examples of (?P<np>.+?)(?: in use)?\?$"),
    re.compile(r"^What are the trade-offs and limits of (?P<np>.+?)\?$"),
    re.compile(r"^What failure modes and risks affect (?P<np>.+?)\?$"),
    re.compile(r"^How (?:do|does) (?P<np>.+?) work(?: .*)?\?$"),
    re.compile(r"^What (?:is|are) (?P<np>.+)\?$"),
]
DOUBLED_WORD = re.compile(r"(?<![\w-])(\w+)\s+\1\b", re.IGNORECASE)


def plan(query: str, cap: int = MAX_SUB_QUESTIONS) -> list[str]:
    return planner.offline(planner.PlannerInput(query=query, max_sub_questions=cap)).sub_questions


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_sub_questions_and_title(case: Case) -> None:
    questions = plan(case.query)

    assert phrasing.report_title(case.query) == case.title
    assert questions[0] == case.asks[0]
    missing = [asked for asked in case.asks if asked not in questions]
    assert not missing, f"missing {missing} in {questions}"
    assert sum(case.subject in question for question in questions) >= 2, questions


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({case.query for case in CASES}) == len(CASES)


EXTRA_QUERIES = [
    "What is event sourcing?",
    "How do retries and timers make workflows reliable?",
    "What limits the size of a workflow history?",
    "How does the saga pattern handle partial failures?",
    "How do workflows replay?",
    "Where does Dapr store workflow state?",
    "What does Dapr store in the state store for each actor?",
    "Are Dapr actors single-threaded?",
    "Does Dapr pub/sub support ordered delivery?",
    "How is mTLS configured between sidecars?",
    "mTLS vs plain TLS in Dapr",
    "How can Dapr actors avoid deadlocks?",
    "Why is Dapr useful?",
    "Who assigns actors to hosts?",
    "How many actors can a single host run?",
    "How does Dapr state store work?",
    "How does state management work in Dapr?",
    "What limits apply to actor reminders?",
    "What is the role of the placement service in actor activation?",
    "How does the scheduler service store reminders?",
    "Kafka vs RabbitMQ for event streaming",
    "How does garbage collection affect latency in Go services?",
    "Why is exactly-once delivery hard to achieve?",
    "How does Dapr's actor reminder differ from a timer?",
    "What is Dapr, and how does it work?",
    "How does it work?",
]
ALL_QUERIES = [case.query for case in CASES] + EXTRA_QUERIES


@pytest.mark.parametrize("query", ALL_QUERIES)
def test_every_plan_reads_as_english(query: str) -> None:
    questions = plan(query)

    assert MIN_SUB_QUESTIONS <= len(questions) <= MAX_SUB_QUESTIONS
    assert len({q.lower() for q in questions}) == len(questions)
    for question in questions:
        assert question.endswith("?") and question.count("?") == 1, question
        assert question[0].isupper() or question.startswith("mTLS"), question
        assert not DOUBLED_WORD.search(question), question
        assert "  " not in question, question
        match = next((m for slot in NOUN_SLOTS if (m := slot.search(question))), None)
        if match:
            words = set(match["np"].lower().split())
            assert not words & QUERY_VERBS, f"a verb is left in the subject: {question}"


@pytest.mark.parametrize("query", ALL_QUERIES)
def test_every_title_reads_as_english(query: str) -> None:
    title = phrasing.report_title(query)

    assert title and not title.endswith(("?", ".", ","))
    assert title[0].isupper() or title.startswith("mTLS")
    assert "What the Sources Say" not in title
    assert not DOUBLED_WORD.search(title)


@pytest.mark.parametrize(
    ("query", "wrong"),
    [
        (CASES[0].query, "How does Dapr decide work?"),
        (CASES[0].query, "What is Dapr decide?"),
        ("How do I configure a Redis state store in Dapr?", "What is configure?"),
        (
            "Which state stores support transactions and ETags in Dapr?",
            "What are state stores support transactions?",
        ),
        (
            "How does the placement service distribute actors across hosts?",
            "What are the placement service distribute actors across hosts?",
        ),
        (
            "Can a Dapr workflow call another workflow as a child?",
            "What is Dapr workflow call another workflow?",
        ),
        (
            "What happens to a running Dapr workflow when the sidecar restarts?",
            "What is running Dapr workflow?",
        ),
    ],
    ids=[
        "dangling-decide",
        "decide-as-noun",
        "configure",
        "support",
        "distribute",
        "call",
        "happens",
    ],
)
def test_the_old_mistakes_are_gone(query: str, wrong: str) -> None:
    assert wrong not in plan(query)


def test_a_multi_clause_query_asks_one_question_per_clause_first() -> None:
    query = (
        "How does Dapr rotate mTLS certificates, and what happens if Sentry is down, "
        "and can applications keep calling each other?"
    )

    questions = plan(query)

    assert questions[:3] == [
        "How does Dapr rotate mTLS certificates?",
        "What happens if Sentry is down in Dapr?",
        "Can applications keep calling each other in Dapr?",
    ]


@pytest.mark.parametrize("cap", [MIN_SUB_QUESTIONS, 4, 6])
def test_a_smaller_cap_keeps_the_first_questions(cap: int) -> None:
    query = CASES[0].query

    assert plan(query, cap) == plan(query)[:cap]


def test_phrasing_is_deterministic() -> None:
    first = [(plan(q), phrasing.report_title(q)) for q in ALL_QUERIES]
    second = [(plan(q), phrasing.report_title(q)) for q in ALL_QUERIES]

    assert first == second


def test_a_query_of_function_words_falls_back_to_quoting_it() -> None:
    questions = plan("How does it work?")

    assert questions == [
        "How does it work?",
        'What background do the sources give on "How does it work"?',
        'What limits and risks do the sources mention for "How does it work"?',
        'What examples do the sources give for "How does it work"?',
    ]


def corpus_sentences() -> list[str]:
    found = []
    for path in sorted(CORPUS_DIR.rglob("*.md")):
        found += [sentence.text for sentence in sentences(path.read_text(encoding="utf-8"))]
    return found


def test_any_text_gives_a_valid_plan_title_and_headings() -> None:
    """Robustness: the planner runs on whatever a user types; it must never fail."""
    texts = corpus_sentences()
    texts += ["", "?", "and", "what", "how does", "vs", "X vs", "between and", "How many", "Is it?"]
    assert len(texts) > 100
    for text in texts:
        for query in (text, text.rstrip(".") + "?"):
            questions = plan(query)
            title = phrasing.report_title(query)
            assert MIN_SUB_QUESTIONS <= len(questions) <= MAX_SUB_QUESTIONS, query
            assert all(q.endswith("?") for q in questions), query
            assert title, query
            for question in questions:
                assert phrasing.question_heading(question, title=title)


# --- headings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "heading"),
    [
        ("How do durable timers survive restarts?", "How durable timers survive restarts"),
        (
            "How does saga compensation undo completed steps?",
            "How saga compensation undoes completed steps",
        ),
        ("Why does Dapr persist workflow history?", "Why Dapr persists workflow history"),
        ("What is durable execution?", "Durable execution"),
        ("What is a Redis state store?", "Redis state store"),
        ("What are the trade-offs and limits of sagas?", "Trade-offs and limits of sagas"),
        ("How do sagas compare with two-phase commit?", "Sagas versus two-phase commit"),
        (
            "How does Redis compare with PostgreSQL as a Dapr state store?",
            "Redis versus PostgreSQL as a Dapr state store",
        ),
        (
            "What failure modes and risks affect durable timers?",
            "What failure modes and risks affect durable timers",
        ),
        ("What is Dapr used for?", "What is Dapr used for"),
        (
            "How do I configure a Redis state store in Dapr?",
            "How to configure a Redis state store in Dapr",
        ),
        ("How are dead-letter topics configured?", "How dead-letter topics are configured"),
        ("Is exactly-once delivery possible?", "Whether exactly-once delivery is possible"),
        (
            "Can a Dapr workflow call another workflow?",
            "Whether a Dapr workflow can call another workflow",
        ),
        ("What does the Sentry service do?", "What the Sentry service does"),
        (
            "How can nondeterminism errors be prevented?",
            "How nondeterminism errors can be prevented",
        ),
        ("What happens when a host fails in Dapr?", "What happens when a host fails in Dapr"),
        (
            "What are the limits of durable timers when the state store of the cluster is "
            "unavailable for hours?",
            "Limits of durable timers when the state store of the cluster",
        ),
    ],
)
def test_headings(question: str, heading: str) -> None:
    assert phrasing.question_heading(question, title="Some title") == heading


def test_the_heading_that_repeats_the_title_is_main_findings() -> None:
    query = "How do durable workflows recover from crashes?"

    title = phrasing.report_title(query)

    assert title == "How durable workflows recover from crashes"
    assert phrasing.question_heading(query, title=title) == "Main findings"


# --- words ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "plural"),
    [
        ("Dapr actors", True),
        ("timers and reminders", True),
        ("the limits on workflow payload size", True),
        ("the size of a workflow history", False),
        ("mTLS", False),
        ("Kubernetes", False),
        ("Redis", False),
        ("Dapr pub/sub", False),
        ("ETags", True),
        ("progress", False),
    ],
)
def test_is_plural(phrase: str, plural: bool) -> None:
    assert phrasing.is_plural(phrase) is plural


@pytest.mark.parametrize(
    ("verb", "third", "gerund"),
    [
        ("decide", "decides", "deciding"),
        ("handle", "handles", "handling"),
        ("guarantee", "guarantees", "guaranteeing"),
        ("undo", "undoes", "undoing"),
        ("do", "does", "doing"),
        ("apply", "applies", "applying"),
        ("run", "runs", "running"),
        ("commit", "commits", "committing"),
        ("publish", "publishes", "publishing"),
        ("version", "versions", "versioning"),
    ],
)
def test_verb_forms(verb: str, third: str, gerund: str) -> None:
    assert phrasing.third_person(verb) == third
    assert phrasing.gerund(verb) == gerund
    assert phrasing.base_of_third_person(third) == verb


@pytest.mark.parametrize(
    ("query", "clauses"),
    [
        ("How does X work?", ["How does X work"]),
        (
            "How does Dapr decide which sidecar hosts an actor, and what if a host fails?",
            ["How does Dapr decide which sidecar hosts an actor", "what if a host fails"],
        ),
        ("What is Dapr? How does it work?", ["What is Dapr", "How does it work"]),
        ("How do timers and reminders differ?", ["How do timers and reminders differ"]),
        ("How does X work, and why?", ["How does X work"]),
        ("Retries; what are the risks", ["Retries", "what are the risks"]),
    ],
)
def test_split_clauses(query: str, clauses: list[str]) -> None:
    assert phrasing.split_clauses(query) == clauses
