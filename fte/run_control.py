"""Answering a run: approve, reject, edit the plan, cancel — one set of rules for every front end.

The CLI (`fte approve/reject/cancel`) and the web console (`fte ui`) both go through these
functions, so a decision is validated the same way (an edited plan needs 3-16 sub-questions
of bounded length), raises the same engine events, fails with the same typed errors (and so
the same exit codes and messages), and tells the person the same thing afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from fte.client import ResearchClient
from fte.contracts import ApprovalDecision
from fte.errors import UsageError


def approval(
    *, approved: bool, comment: str = "", sub_questions: Sequence[str] | None = None
) -> ApprovalDecision:
    """The decision, validated before anything is started or sent (bad input: UsageError)."""
    try:
        return ApprovalDecision(
            approved=approved,
            comment=comment,
            sub_questions=list(sub_questions) if sub_questions is not None else None,
        )
    except ValidationError as exc:
        raise UsageError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None


def approve(client: ResearchClient, task_id: str, decision: ApprovalDecision) -> str:
    """Send an approval; returns what to tell the person."""
    client.approve(task_id, decision)
    edited = " with an edited plan" if decision.sub_questions is not None else ""
    return f"Approved the plan of {task_id}{edited}"


def reject(client: ResearchClient, task_id: str, reason: str) -> str:
    client.approve(task_id, approval(approved=False, comment=reason))
    return f"Rejected the plan of {task_id}; its partial artifacts will be deleted"


def cancel(client: ResearchClient, task_id: str, reason: str = "") -> str:
    client.cancel(task_id, reason)
    return f"Cancelling {task_id}; its partial artifacts will be deleted"
