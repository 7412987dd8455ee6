"""Reviewer: after fact checking, lists what the research has not settled yet.

Three kinds of gap, each turned into one self-contained search question that a source
finder can take as a sub-question in the next round:

- `unanswered`: a sub-question that no supported claim answers;
- `contradicted` / `unverifiable`: a claim a cited passage contradicts, or that its cited
  passages do not state (verdict "unsupported");
- `follow_up`: a question the supported findings raise and the plan did not ask.

The first two kinds are facts the code knows from the verdicts, so the rules add any the
model left out: a model can add follow-ups and phrase the questions better, never hide an
unanswered sub-question. A follow-up or a doubtful claim already searched in an earlier round
(same words) is dropped; an unanswered sub-question is asked again each round, because each
round looks past every passage the run has, so the same words reach passages not read yet.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from fte.agents.agent import Agent
from fte.contracts import MAX_QUERY_CHARS, CheckedClaim, Contract, Gap, SubQuestion, Verdict
from fte.text import collapse

GapKind = Literal["unanswered", "contradicted", "unverifiable", "follow_up"]  # as Gap.kind
# Which gaps a round searches first when there are more than it may take: an unanswered
# sub-question is a hole in the report; a doubtful claim is only a weaker paragraph.
PRIORITY: tuple[GapKind, ...] = ("unanswered", "contradicted", "unverifiable", "follow_up")
MAX_GAPS = 8


class ReviewedClaim(Contract):
    """A fact-checked claim as the reviewer sees it: no passages, only what was decided."""

    id: str
    text: str
    verdict: Verdict
    sub_question_id: str | None = None

    @classmethod
    def of(cls, checked: CheckedClaim) -> ReviewedClaim:
        return cls(
            id=checked.claim.id,
            text=checked.claim.text,
            verdict=checked.verdict,
            sub_question_id=checked.claim.sub_question_id,
        )


class ReviewInput(Contract):
    """The research so far: question, plan, every checked claim, and what was searched."""

    query: str
    round: int = Field(ge=1, description="The round the gaps are for (1 = the first extra one).")
    sub_questions: list[SubQuestion]
    claims: list[ReviewedClaim]
    searched: list[str] = Field(
        default_factory=list, description="Questions already searched in earlier rounds."
    )
    max_gaps: int = Field(ge=1, le=MAX_GAPS)


class ProposedGap(BaseModel):
    """One thing the research has not settled, as a question to search next."""

    kind: GapKind = Field(
        description=(
            "'unanswered': a sub-question no supported claim answers; 'contradicted' / "
            "'unverifiable': a claim whose verdict was contradicted / unsupported; "
            "'follow_up': a question the supported claims raise that the plan did not ask."
        )
    )
    question: str = Field(
        description=(
            "A self-contained search question: names its subject in full, asks one thing, "
            "keeps the exact terms of the claim or sub-question it comes from."
        )
    )
    sub_question_id: str | None = Field(
        default=None, description="ID of the sub-question it concerns (e.g. 'q2'), if any."
    )
    claim_id: str | None = Field(
        default=None, description="ID of the claim it concerns (e.g. 'C4'), if any."
    )


class ReviewOutput(BaseModel):
    """The gaps, most important first."""

    gaps: list[ProposedGap] = Field(
        description="Unanswered sub-questions, doubtful claims and follow-up questions."
    )


class Review(Contract):
    """Every gap found, most important first; a round takes the first `max_gaps`."""

    gaps: list[Gap]


def required_gaps(inputs: ReviewInput) -> list[ProposedGap]:
    """The gaps the verdicts alone establish, in plan and claim order."""
    supported = {c.sub_question_id for c in inputs.claims if c.verdict == "supported"}
    gaps = [
        ProposedGap(kind="unanswered", question=q.text, sub_question_id=q.id)
        for q in inputs.sub_questions
        if q.id not in supported
    ]
    for claim in inputs.claims:
        if claim.verdict != "supported":
            gaps.append(
                ProposedGap(
                    kind="contradicted" if claim.verdict == "contradicted" else "unverifiable",
                    question=claim.text,
                    sub_question_id=claim.sub_question_id,
                    claim_id=claim.id,
                )
            )
    return gaps


def _key(question: str) -> str:
    return collapse(question).casefold().rstrip("?. ")


def rules(inputs: ReviewInput, output: ReviewOutput) -> Review:
    """Keep the model's gaps that point at real IDs, add the ones it missed, rank, number."""
    questions = {q.id for q in inputs.sub_questions}
    claims = {c.id: c for c in inputs.claims}
    proposed: list[ProposedGap] = []
    for gap in output.gaps:
        # An ID the model made up would send the round's findings to no sub-question.
        sub_question = gap.sub_question_id if gap.sub_question_id in questions else None
        claim = gap.claim_id if gap.claim_id in claims else None
        if claim is not None and sub_question is None:
            sub_question = claims[claim].sub_question_id
        proposed.append(gap.model_copy(update={"sub_question_id": sub_question, "claim_id": claim}))
    covered = {(g.kind, g.sub_question_id, g.claim_id) for g in proposed}
    for gap in required_gaps(inputs):
        if (gap.kind, gap.sub_question_id, gap.claim_id) not in covered:
            proposed.append(gap)

    searched = {_key(text) for text in inputs.searched}
    this_round: set[str] = set()
    kept: list[ProposedGap] = []
    for gap in sorted(proposed, key=lambda g: PRIORITY.index(g.kind)):  # stable: order kept
        question = collapse(gap.question)[:MAX_QUERY_CHARS]
        # An unanswered sub-question is asked again each round: each round looks past every
        # passage the run has, so the same words find new ones. Anything else is searched once.
        repeat = _key(question) in searched and gap.kind != "unanswered"
        if not question or repeat or _key(question) in this_round:
            continue
        this_round.add(_key(question))
        kept.append(gap.model_copy(update={"question": question}))
    return Review(
        gaps=[
            Gap(id=f"g{inputs.round}.{n}", **gap.model_dump())
            for n, gap in enumerate(kept[: inputs.max_gaps], 1)
        ]
    )


def offline(inputs: ReviewInput) -> ReviewOutput:
    """The gaps the verdicts establish; no follow-ups, which would need a language model.

    An unanswered sub-question is searched again as written (the next round looks past the
    passages already kept); a doubtful claim is searched as its own statement, which finds
    the passages that state or refute it if the corpus has them.
    """
    # Ranking, de-duplication and the cap are the rules' job, the same for a model's answer.
    return ReviewOutput(gaps=required_gaps(inputs))


AGENT = Agent(
    name="reviewer",
    prompt="reviewer",
    input_model=ReviewInput,
    output_model=ReviewOutput,
    result_model=Review,
    rules=rules,
    offline=offline,
)
