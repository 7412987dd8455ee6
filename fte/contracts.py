"""Pydantic contracts shared by workflows, activities, agents and the CLI.

Everything that crosses a workflow/activity boundary is one of these models,
serialized to plain JSON by Dapr and re-validated on the other side, so a
replayed workflow sees exactly the data the first execution saw.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fte.limits import DEFAULT_SUB_QUESTIONS as DEFAULT_SUB_QUESTIONS
from fte.limits import MAX_SUB_QUESTIONS as MAX_SUB_QUESTIONS
from fte.limits import MIN_SUB_QUESTIONS as MIN_SUB_QUESTIONS

# The model every agent calls unless settings say otherwise.
DEFAULT_MODEL = "gpt-4o-mini"
# The name the built-in offline model reports (see `fte.agents.offline_model`).
OFFLINE_MODEL = "fte-offline-extractive"
# How many sub-questions a plan has (MIN_/MAX_SUB_QUESTIONS) is in fte.limits, with the
# other bounds the CLI's help states.
# The longest research question, and so the longest sub-question a person may write.
MAX_QUERY_CHARS = 2000
# The longest a run waits for anything (approval, a check-in), in seconds: 30 days. Its
# durable timers must stay representable, and a run should end long before its history
# would be purged.
MAX_WAIT_S = 30 * 24 * 3600


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenUsage(Contract):
    """Tokens reported by the model server, summed over calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            calls=self.calls + other.calls,
        )


class Passage(Contract):
    """One chunk of one document, as returned by a source provider's search."""

    passage_id: str = Field(description="Stable ID of this chunk (same corpus, same ID).")
    title: str
    location: str = Field(description="File path or URL the passage was read from.")
    section: str = Field(default="", description="Heading path within the document, if any.")
    page: int | None = Field(default=None, description="Page number in a PDF, if any.")
    text: str
    score: float = 0.0
    retrieved_at: str | None = Field(
        default=None,
        description="ISO-8601 UTC time its document was fetched, when that was not the "
        "search's time (a web page from the page cache); None: retrieved by the search.",
    )


class Source(Contract):
    """A passage retrieved in this run, with the run-scoped ID the writer cites."""

    id: str = Field(description="Run-scoped source ID such as 'S3'; citations use it.")
    passage_id: str
    title: str
    location: str
    section: str = Field(default="", description="Heading path within the document, if any.")
    page: int | None = Field(default=None, description="Page number in a PDF, if any.")
    text: str
    retrieved_at: str = Field(description="ISO-8601 UTC time the passage was retrieved.")
    sub_question_id: str


class SubQuestion(Contract):
    id: str = Field(description="Stable ID such as 'q1'.")
    text: str

    @classmethod
    def numbered(cls, texts: list[str]) -> list[SubQuestion]:
        """The one ID scheme for sub-questions: q1, q2, ... in plan order."""
        return [cls(id=f"q{i}", text=text.strip()) for i, text in enumerate(texts, 1)]


class QuotedSource(Contract):
    """A retrieved source as an agent is shown it: the ID to cite, where it is from, its text."""

    id: str = Field(description="The ID to cite, such as 'S3'.")
    title: str
    location: str = Field(description="File path or URL the passage was read from.")
    text: str

    @classmethod
    def of(cls, source: Source) -> QuotedSource:
        return cls(id=source.id, title=source.title, location=source.location, text=source.text)


class Claim(Contract):
    """A factual statement the analyst extracted, with the sources it rests on."""

    id: str = Field(description="Run-scoped claim ID such as 'C4'.")
    text: str
    source_ids: list[str]
    sub_question_id: str | None = None


Verdict = Literal["supported", "unsupported", "contradicted"]


class CheckedClaim(Contract):
    claim: Claim
    verdict: Verdict
    evidence: str = Field(description="Verbatim quote from the cited passage, or '' if none.")
    evidence_source_id: str | None = None


# -- run configuration (workflow input: never secrets) ---------------------


class AgentModels(Contract):
    """The model name each agent calls; any OpenAI-compatible server's names work."""

    planner: str = DEFAULT_MODEL
    source_finder: str = DEFAULT_MODEL
    analyst: str = DEFAULT_MODEL
    fact_checker: str = DEFAULT_MODEL
    writer: str = DEFAULT_MODEL
    reviewer: str = DEFAULT_MODEL


CitationPolicy = Literal["remove", "mark"]
# Where source finders search: the local corpus, the web (fte.web), or both.
SourceKind = Literal["local", "web"]


def local_only() -> list[SourceKind]:
    """The default `sources`: the local corpus, as before web research existed."""
    return ["local"]


class ModelEndpoint(Contract):
    """Which model server a run's agents call.

    Part of the run's input, so every activity of the run uses it whichever worker runs
    it. Never a secret: no key, and a base URL without credentials.
    """

    offline: bool = False
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL, no credentials; None: OpenAI's."
    )

    def describe(self) -> str:
        if self.offline:
            return "the built-in offline extractive model (no LLM configured)"
        return f"OpenAI-compatible server {self.base_url or 'https://api.openai.com/v1'}"


# Gap-filling rounds a run may do after its first pass (`--depth`), and how many a run
# does unless told (a RunConfig that says nothing does none: it predates rounds).
MAX_DEPTH = 5
DEFAULT_DEPTH = 1


class ModelPrice(Contract):
    """USD per one million tokens (`fte.pricing`), fixed for the run when it starts."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Budget(Contract):
    """A run's spending limit, and the prices its spend is counted in.

    The prices travel in the workflow input because the workflow may not read the
    environment (`FTE_PRICES`) and must count the same way on every replay.
    """

    usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tokens: int | None = Field(default=None, gt=0)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    @property
    def limited(self) -> bool:
        return self.usd is not None or self.tokens is not None


class RunConfig(Contract):
    """Everything a research run needs, passed in as workflow input so replays see it unchanged."""

    query: str = Field(min_length=1)
    corpus_dir: str
    models: AgentModels = Field(default_factory=AgentModels)
    endpoint: ModelEndpoint = Field(default_factory=ModelEndpoint)
    require_approval: bool = False
    approval_timeout_s: float = Field(default=3600.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False)
    approval_reminder_interval_s: float = Field(
        default=600.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False
    )
    auto_approve_on_timeout: bool = False
    progress_checkin_interval_s: float = Field(
        default=120.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False
    )
    citation_policy: CitationPolicy = "remove"
    max_sub_questions: int = Field(
        default=DEFAULT_SUB_QUESTIONS, ge=MIN_SUB_QUESTIONS, le=MAX_SUB_QUESTIONS
    )
    sources_per_question: int = Field(default=4, ge=1, le=10)
    sources: list[SourceKind] = Field(default_factory=local_only, min_length=1)
    search_candidates: int = Field(default=8, ge=1, le=30)
    schedule: str | None = Field(default=None, description="The schedule that started the run.")
    compare_with: str | None = Field(
        default=None, description="A completed run whose report this one is compared with."
    )
    depth: int = Field(
        default=0, ge=0, le=MAX_DEPTH, description="Gap-filling rounds after the first pass."
    )
    budget: Budget = Field(default_factory=Budget)


# -- progress (workflow custom status) ------------------------------------

Stage = Literal[
    "planning",
    "awaiting_approval",
    "finding_sources",
    "analysing",
    "fact_checking",
    "writing",
    "reviewing",
    "finalizing",
    "compensating",
    "completed",
    "failed",
    "rejected",
    "cancelled",
]
TERMINAL_STAGES: frozenset[str] = frozenset({"completed", "failed", "rejected", "cancelled"})


class SubQuestionProgress(Contract):
    id: str
    text: str
    state: Literal["pending", "searching", "done", "failed"] = "pending"
    sources: int = 0


class Gap(Contract):
    """Something the research has not settled, as a question a round can search (`g<r>.<n>`)."""

    id: str
    kind: Literal["unanswered", "contradicted", "unverifiable", "follow_up"]
    question: str
    sub_question_id: str | None = None
    claim_id: str | None = None

    def as_sub_question(self) -> SubQuestion:
        """The gap as a source finder's sub-question (same ID, so its artifacts are its own)."""
        return SubQuestion(id=self.id, text=self.question)


class RoundReport(Contract):
    """One gap-filling round: what it looked for, what it found, which claims it added."""

    round: int
    state: Literal["reviewing", "searching", "analysing", "fact_checking", "done"] = "reviewing"
    looked_for: list[Gap] = Field(default_factory=list)
    sources_found: list[str] = Field(default_factory=list, description="New source IDs.")
    claims_added: list[str] = Field(default_factory=list, description="New claim IDs.")
    supported_added: int = 0
    note: str = ""


class Spend(Contract):
    """What a run has spent so far, against its budget (None: no limit of that kind)."""

    tokens: int = 0
    usd: float | None = 0.0
    budget_usd: float | None = None
    max_tokens: int | None = None
    stopped: str | None = Field(
        default=None, description="Why the budget ended the research early, if it did."
    )

    def describe(self) -> str:
        """`1,234 of 5,000 tokens, $0.0100 of $0.0500` (only the limits that are set)."""
        parts = []
        if self.max_tokens is not None:
            parts.append(f"{self.tokens:,} of {self.max_tokens:,} tokens")
        if self.budget_usd is not None:
            usd = "unknown" if self.usd is None else f"${self.usd:,.4f}"
            parts.append(f"{usd} of ${self.budget_usd:,.4f}")
        return ", ".join(parts) or f"{self.tokens:,} tokens (no budget)"


class Progress(Contract):
    """Live progress, stored as the workflow's custom status (JSON)."""

    task_id: str
    query: str
    stage: Stage
    started_at: str
    updated_at: str
    sub_questions: list[SubQuestionProgress] = Field(default_factory=list)
    sources_found: int = 0
    claims: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    usage_by_agent: dict[str, TokenUsage] = Field(default_factory=dict)
    models: AgentModels = Field(default_factory=AgentModels)
    checkins: int = 0
    reason: str | None = None
    depth: int = 0
    round: int = Field(default=0, description="The gap-filling round under way (0: first pass).")
    rounds: list[RoundReport] = Field(default_factory=list)
    spend: Spend | None = None


# -- human approval --------------------------------------------------------


class ApprovalDecision(Contract):
    """Payload of the `approval` external event."""

    approved: bool
    comment: str = ""
    sub_questions: list[str] | None = Field(
        default=None, description="Replacement sub-questions, if the reviewer edited the plan."
    )

    @field_validator("sub_questions")
    @classmethod
    def _three_to_eight(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        texts = [t.strip() for t in value if t.strip()]
        if not MIN_SUB_QUESTIONS <= len(texts) <= MAX_SUB_QUESTIONS:
            raise ValueError(
                f"an edited plan needs {MIN_SUB_QUESTIONS} to {MAX_SUB_QUESTIONS} non-empty "
                f"sub-questions, got {len(texts)}"
            )
        for number, text in enumerate(texts, 1):
            if len(text) > MAX_QUERY_CHARS:
                raise ValueError(
                    f"sub-question {number} is {len(text):,} characters; "
                    f"keep each under {MAX_QUERY_CHARS:,}"
                )
        return texts


# -- stage results ---------------------------------------------------------


class SourceFinderInput(Contract):
    """Input of one source-finder child workflow."""

    task_id: str
    sub_question: SubQuestion
    corpus_dir: str
    endpoint: ModelEndpoint
    model: str
    keep: int = Field(description="Passages to keep at most.")
    candidates: int = Field(description="Passages to retrieve and judge.")
    exclude_passage_ids: list[str] = Field(
        default_factory=list,
        description="Passages the run already has: a gap round looks past them.",
    )
    sources: list[SourceKind] = Field(default_factory=local_only, min_length=1)


class SourceFinderResult(Contract):
    sub_question_id: str
    passages: list[Passage]
    retrieved_at: str
    usage: TokenUsage


class CitationIntegrity(Contract):
    """What the code-side citation check found and did."""

    policy: CitationPolicy
    citations_checked: int = 0
    unknown_sources: int = 0
    unsupported_claims: int = 0
    paragraphs_removed: int = 0
    citations_removed: int = 0
    marked: int = 0


EndStatus = Literal["failed", "rejected", "cancelled"]


class Outcome(Contract):
    """The coordinator's output; `status` is the run's end state."""

    task_id: str
    status: Literal["completed", "failed", "rejected", "cancelled"]
    reason: str | None = None
    report_key: str | None = None
    usage: TokenUsage = Field(default_factory=TokenUsage)
    integrity: CitationIntegrity | None = None
    spend: Spend | None = None


# -- agents ----------------------------------------------------------------


ReplyShape = Literal["full", "brief", "usage"]


class AgentTask(Contract):
    """Input of an agent's activity (and of a specialist child workflow that runs one)."""

    task_id: str
    agent: str
    model: str
    endpoint: ModelEndpoint = Field(default_factory=ModelEndpoint)
    inputs: dict[str, Any] = Field(description="The agent's input model, as JSON.")
    artifact: str | None = Field(
        default=None, description="Store the checked result under this artifact name."
    )
    sources_from: list[str] | None = Field(
        default=None,
        description="Artifacts holding the run's sources: the quoted sources in `inputs` "
        "carry only their IDs and are filled in from there (lean history).",
    )
    claims_from: list[str] | None = Field(
        default=None,
        description="Artifacts holding the run's claims: the analyst's notes (for the fact "
        "checker) or the fact checks (for the writer).",
    )
    from_store: bool = Field(
        default=False,
        description="The claims and sources lists of `inputs` were left empty on purpose: "
        "the activity builds them from `sources_from` and `claims_from` (coordinator v3).",
    )
    reply: ReplyShape = Field(
        default="full",
        description="What of the result the reply carries (the whole result is stored in "
        "`artifact`): `full`; `brief`, without the text no workflow reads (the agent's "
        "`brief`); `usage`, no result at all, for one only activities read (the draft).",
    )

    @model_validator(mode="after")
    def _stored_result_has_a_home(self) -> AgentTask:
        if self.reply != "full" and self.artifact is None:
            raise ValueError("a result left out of the reply must be stored: name an artifact")
        return self


class AgentReply(Contract):
    """An agent's checked result (its `result_model` as JSON) and the tokens it cost."""

    result: dict[str, Any]
    usage: TokenUsage


# -- activity inputs --------------------------------------------------------


class StoreInput(Contract):
    task_id: str
    name: str
    document: dict[str, object]


class SearchInput(Contract):
    corpus_dir: str
    queries: list[str]
    limit: int
    task_id: str = Field(default="", description="The run searching: its web refusals go there.")
    sources: list[SourceKind] = Field(default_factory=local_only, min_length=1)


class SearchResult(Contract):
    passages: list[Passage]
    retrieved_at: str


class CandidatesInput(Contract):
    """A lean source finder's search: its results are stored, not returned."""

    search: SearchInput
    name: str = Field(description="The artifact the candidates are stored under.")
    exclude_passage_ids: list[str] = Field(
        default_factory=list, description="Passages the run already has: left out."
    )
    keep_at_most: int = Field(description="Candidates to keep after the exclusion.")


class CandidatesFound(Contract):
    """What a workflow learns of a stored search: how many passages, and when."""

    count: int
    retrieved_at: str


class ProposeAndSearchInput(Contract):
    """Coordinator v4's source finder opens with one activity: the query proposal (an agent
    task, answered once) and the search of the queries it proposes (their results stored)."""

    proposal: AgentTask
    search: CandidatesInput = Field(description="Its search's `queries` are the proposal's.")


class CandidatesProposed(CandidatesFound):
    """What the source finder learns of its proposal and search: the proposal's spend, how
    many candidates are stored, and when they were retrieved."""

    usage: TokenUsage


class FindSourcesInput(Contract):
    """Coordinator v5's source finder is one activity: the query proposal (an agent task,
    answered once), the search of the queries it proposes, and the relevance judgement of
    the passages it finds (on the proposal's model), whose kept passages are stored."""

    proposal: AgentTask
    search: SearchInput = Field(description="Its `queries` are the proposal's.")
    exclude_passage_ids: list[str] = Field(
        default_factory=list, description="Passages the run already has: left out."
    )
    keep_at_most: int = Field(description="Candidates judged, after the exclusion.")
    sub_question: SubQuestion
    keep: int = Field(description="The most passages the judgement keeps.")


class SourcesKept(Contract):
    """A lean source finder's result: how many passages it kept (stored as `sources.<q>`)."""

    sub_question_id: str
    kept: int
    usage: TokenUsage


class GatherInput(Contract):
    """Number the passages that source finders kept (`sources.<q>` artifacts, in order)."""

    task_id: str
    found: list[str] = Field(description="The source finders' artifacts, in order.")
    known_passage_ids: list[str] = Field(default_factory=list)
    numbered_from: int = Field(default=0, description="How many sources the run has.")
    name: str = Field(description="The artifact the new sources are stored under.")


class Gathered(Contract):
    """The new sources without their text (it stays in the state store)."""

    sources: list[Source]


class JudgeInput(Contract):
    """A lean source finder's relevance judgement over the candidates stored by its search."""

    task_id: str
    sub_question: SubQuestion
    candidates: str = Field(description="The artifact holding the candidates (deleted after).")
    endpoint: ModelEndpoint
    model: str
    keep: int
    retrieved_at: str
    usage: TokenUsage = Field(description="What the source finder spent before the judgement.")


class FinalizeInput(Contract):
    task_id: str
    query: str
    draft: dict[str, object] = Field(default_factory=dict)
    sources: list[Source]
    checked: list[CheckedClaim]
    sub_questions: list[SubQuestion]
    plan_rationale: str
    policy: CitationPolicy
    usage_by_agent: dict[str, TokenUsage]
    stage_seconds: dict[str, float]
    models: AgentModels
    endpoint: ModelEndpoint
    started_at: str
    finished_at: str
    schedule: str | None = None
    compare_with: str | None = None
    rounds: list[RoundReport] = Field(default_factory=list)
    remaining_gaps: list[Gap] = Field(default_factory=list)
    spend: Spend | None = None
    sources_from: list[str] | None = Field(
        default=None,
        description="Artifacts holding the sources; replace `sources` when given (lean history).",
    )
    checked_from: list[str] | None = Field(
        default=None,
        description="Artifacts holding the fact checks; replace `checked` when given.",
    )
    draft_from: str | None = Field(
        default=None, description="The artifact holding the draft; replaces `draft` when given."
    )


class FinalizeResult(Contract):
    report_key: str
    integrity: CitationIntegrity


class Notice(Contract):
    """A message for people: approval requests, reminders and progress check-ins."""

    task_id: str
    kind: Literal[
        "approval_request",
        "approval_reminder",
        "progress_checkin",
        "outcome",
        # scheduled runs: fired (started, skipped or buffered), completed, and what changed
        "scheduled_run",
        "run_completed",
        "changed",
        "unchanged",
    ]
    message: str
    data: dict[str, object] = Field(default_factory=dict)


class DeleteInput(Contract):
    task_id: str
    names: list[str]


class CancelChildrenInput(Contract):
    instance_ids: list[str]
