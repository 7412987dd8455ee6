"""The reviewer: the gaps its rules keep, add, rank and number; its offline twin; its prompt."""

from __future__ import annotations

from typing import Any

from fte.agents import offline_model, reviewer
from fte.agents.reviewer import ProposedGap, ReviewedClaim, ReviewInput, ReviewOutput
from fte.contracts import OFFLINE_MODEL, Gap, SubQuestion

QUESTIONS = SubQuestion.numbered(
    [
        "What COP do heat pumps reach at -15 °C?",
        "How does defrosting affect heat pump output?",
        "How loud are heat pumps outdoors?",
    ]
)
CLAIMS = [
    ReviewedClaim(
        id="C1", text="Heat pumps keep a COP of 2.1.", verdict="supported", sub_question_id="q1"
    ),
    ReviewedClaim(
        id="C2", text="Defrosting halves output.", verdict="contradicted", sub_question_id="q2"
    ),
    ReviewedClaim(
        id="C3", text="Heat pumps run at 40 dB.", verdict="unsupported", sub_question_id="q3"
    ),
]


def review_input(**overrides: Any) -> ReviewInput:
    fields: dict[str, Any] = {
        "query": "How do heat pumps perform in cold climates?",
        "round": 2,
        "sub_questions": QUESTIONS,
        "claims": CLAIMS,
        "max_gaps": 8,
    }
    return ReviewInput(**{**fields, **overrides})


def gaps(inputs: ReviewInput, *proposed: ProposedGap) -> list[tuple[str, str, str, Any, Any]]:
    review = reviewer.rules(inputs, ReviewOutput(gaps=list(proposed)))
    return [(g.id, g.kind, g.question, g.sub_question_id, g.claim_id) for g in review.gaps]


def test_verdicts_alone_give_unanswered_questions_then_doubtful_claims() -> None:
    assert gaps(review_input()) == [
        ("g2.1", "unanswered", QUESTIONS[1].text, "q2", None),
        ("g2.2", "unanswered", QUESTIONS[2].text, "q3", None),
        ("g2.3", "contradicted", "Defrosting halves output.", "q2", "C2"),
        ("g2.4", "unverifiable", "Heat pumps run at 40 dB.", "q3", "C3"),
    ]


def test_the_model_phrases_gaps_and_adds_follow_ups_but_cannot_drop_one() -> None:
    better = ProposedGap(
        kind="unanswered",
        question="By how much does defrosting reduce heat pump heating output?",
        sub_question_id="q2",
    )
    follow_up = ProposedGap(
        kind="follow_up", question="How is heat pump COP measured?", claim_id="C1"
    )
    assert gaps(review_input(), follow_up, better) == [
        ("g2.1", "unanswered", better.question, "q2", None),
        # the model left q3 out: the rules add it back
        ("g2.2", "unanswered", QUESTIONS[2].text, "q3", None),
        ("g2.3", "contradicted", "Defrosting halves output.", "q2", "C2"),
        ("g2.4", "unverifiable", "Heat pumps run at 40 dB.", "q3", "C3"),
        # a follow-up of a claim belongs to that claim's sub-question
        ("g2.5", "follow_up", "How is heat pump COP measured?", "q1", "C1"),
    ]


def test_made_up_ids_are_dropped_and_blank_questions_skipped() -> None:
    invented = ProposedGap(
        kind="follow_up", question="  What   about  noise?  ", sub_question_id="q9", claim_id="C9"
    )
    blank = ProposedGap(kind="follow_up", question="   ")
    assert gaps(review_input(), invented, blank)[-1] == (
        "g2.5",
        "follow_up",
        "What about noise?",
        None,
        None,
    )


def test_searched_follow_ups_and_claims_are_dropped_unanswered_questions_asked_again() -> None:
    again = ProposedGap(kind="follow_up", question="What about noise?")
    searched = [
        "how does defrosting affect heat pump output",  # q2, still unanswered
        "Defrosting halves output.",  # C2's question
        "What about noise?",
    ]
    assert gaps(review_input(searched=searched), again) == [
        # Each round looks past every passage the run has: the same words find new ones.
        ("g2.1", "unanswered", QUESTIONS[1].text, "q2", None),
        ("g2.2", "unanswered", QUESTIONS[2].text, "q3", None),
        ("g2.3", "unverifiable", "Heat pumps run at 40 dB.", "q3", "C3"),
    ]


def test_the_cap_keeps_the_most_important() -> None:
    assert [g[0:2] for g in gaps(review_input(max_gaps=2))] == [
        ("g2.1", "unanswered"),
        ("g2.2", "unanswered"),
    ]


def test_nothing_left_to_look_for() -> None:
    settled = [c.model_copy(update={"verdict": "supported"}) for c in CLAIMS]
    assert gaps(review_input(claims=settled)) == []


def test_offline_twin_reports_the_verdicts_gaps_and_usage() -> None:
    run = reviewer.AGENT.run(offline_model(), OFFLINE_MODEL, review_input(max_gaps=3))
    assert [g.id for g in run.result.gaps] == ["g2.1", "g2.2", "g2.3"]
    assert run.usage.calls == 1 and run.usage.prompt_tokens > 0


def test_a_gap_is_searched_as_a_sub_question_of_its_own() -> None:
    gap = Gap(id="g1.2", kind="follow_up", question="Why?")
    assert gap.as_sub_question() == SubQuestion(id="g1.2", text="Why?")


def test_prompt_states_the_cap() -> None:
    _, user = reviewer.AGENT.render(review_input(max_gaps=3))
    assert "at most 3 of them" in user
