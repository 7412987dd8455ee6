"""Pydantic contracts shared by workflows, activities, agents and the CLI.

Everything that crosses a workflow/activity boundary is one of these models,
serialized to plain JSON by Dapr and re-validated on the other side, so a
replayed workflow sees exactly the data the first execution saw.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
    text: str
    score: float = 0.0


class Source(Contract):
    """A passage retrieved in this run, with the run-scoped ID the writer cites."""

    id: str = Field(description="Run-scoped source ID such as 'S3'; citations use it.")
    passage_id: str
    title: str
    location: str
    text: str
    retrieved_at: str = Field(description="ISO-8601 UTC time the passage was retrieved.")
    sub_question_id: str


class SubQuestion(Contract):
    id: str = Field(description="Stable ID such as 'q1'.")
    text: str


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
