"""The approval gate: wait for a person to approve, edit or reject the plan.

Reminders go out on a timer until the deadline; at the deadline the plan is
rejected, or approved if the run was configured to. A malformed answer is
reported and ignored, never fatal. `cancel` ends the wait at any time.
"""

from __future__ import annotations

from datetime import timedelta

import dapr.ext.workflow as wf
from pydantic import ValidationError

from fte import artifacts, names
from fte.agents.planner import Plan
from fte.contracts import ApprovalDecision, SubQuestion
from fte.coordinator.progress import iso
from fte.coordinator.run import Flow, Run, RunEnded, cancel_reason


def approval_gate(run: Run, plan: Plan) -> Flow:
    """Returns the plan to carry out: the planner's, or the reviewer's edit of it."""
    run.progress.enter("awaiting_approval")
    cfg, ctx = run.cfg, run.ctx
    deadline = ctx.current_utc_datetime + timedelta(seconds=cfg.approval_timeout_s)
    yield run.notice(
        "approval_request",
        f"Approve the research plan: fte approve {run.task_id}  |  "
        f"fte reject {run.task_id} --reason ...",
        sub_questions=[q.text for q in plan.sub_questions],
        deadline=iso(deadline),
    )
    event = ctx.wait_for_external_event(names.APPROVAL_EVENT)
    while True:
        now = ctx.current_utc_datetime
        reminder_at = min(now + timedelta(seconds=cfg.approval_reminder_interval_s), deadline)
        timer = ctx.create_timer(reminder_at)
        winner = yield wf.when_any([event, run.cancel, timer])
        if winner is run.cancel:
            raise RunEnded("cancelled", cancel_reason(run.cancel.get_result()))
        if winner is timer:
            if ctx.current_utc_datetime >= deadline:
                if cfg.auto_approve_on_timeout:
                    yield run.notice("approval_reminder", "No answer: plan auto-approved")
                    return plan
                raise RunEnded(
                    "rejected",
                    f"no approval within {cfg.approval_timeout_s:g}s (deadline {iso(deadline)})",
                )
            run.progress.checked_in()
            yield run.notice(
                "approval_reminder",
                f"Still waiting for approval of {run.task_id} (deadline {iso(deadline)})",
            )
            continue
        try:
            decision = ApprovalDecision.model_validate(event.get_result())
        except ValidationError as exc:
            # A malformed answer must not end the run: say so and keep waiting.
            yield run.notice("approval_reminder", f"Ignored an invalid approval: {exc}")
            event = ctx.wait_for_external_event(names.APPROVAL_EVENT)
            continue
        if not decision.approved:
            raise RunEnded("rejected", decision.comment or "plan rejected by reviewer")
        if decision.sub_questions is None:
            return plan
        edited = Plan(
            sub_questions=SubQuestion.numbered(decision.sub_questions),
            rationale=f"{plan.rationale}\n\nEdited by reviewer: {decision.comment}".strip(),
        )
        run.sub_question_ids = [q.id for q in edited.sub_questions]
        run.progress.set_sub_questions(edited.sub_questions)
        yield run.store(artifacts.PLAN, edited)
        return edited
