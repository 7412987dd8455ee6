"""A run's live progress: stage, sub-questions, sources, tokens; the workflow's custom status."""

from __future__ import annotations

from datetime import UTC, datetime

import dapr.ext.workflow as wf
import structlog

from fte.contracts import (
    TERMINAL_STAGES,
    AgentModels,
    Progress,
    Stage,
    SubQuestion,
    SubQuestionProgress,
    TokenUsage,
)

log = structlog.get_logger(__name__)


def iso(moment: datetime) -> str:
    """ISO-8601 with an explicit UTC offset: the engine's clock is UTC but naive."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat(timespec="seconds")


class ProgressTracker:
    """Keeps `Progress` and the seconds spent per stage; publishes on every change.

    Rebuilt identically on every replay: it reads time only from the workflow context.
    """

    def __init__(
        self, ctx: wf.DaprWorkflowContext, *, task_id: str, query: str, models: AgentModels
    ) -> None:
        self._ctx = ctx
        started = iso(ctx.current_utc_datetime)
        self.state = Progress(
            task_id=task_id,
            query=query,
            stage="planning",
            started_at=started,
            updated_at=started,
            models=models,
        )
        self.stage_seconds: dict[str, float] = {}
        self._stage_started = ctx.current_utc_datetime

    @property
    def stage(self) -> Stage:
        return self.state.stage

    def publish(self) -> None:
        self.state.updated_at = iso(self._ctx.current_utc_datetime)
        self._ctx.set_custom_status(self.state.model_dump_json())

    def enter(self, stage: Stage) -> None:
        now = self._ctx.current_utc_datetime
        previous = self.state.stage
        if previous not in TERMINAL_STAGES:
            elapsed = (now - self._stage_started).total_seconds()
            self.stage_seconds[previous] = self.stage_seconds.get(previous, 0.0) + elapsed
        self._stage_started = now
        self.state.stage = stage
        if not self._ctx.is_replaying:
            log.info("stage", task_id=self.state.task_id, stage=stage)
        self.publish()

    def add_usage(self, agent: str, usage: TokenUsage) -> None:
        by_agent = self.state.usage_by_agent
        by_agent[agent] = by_agent.get(agent, TokenUsage()) + usage
        self.state.usage = self.state.usage + usage

    def set_sub_questions(self, sub_questions: list[SubQuestion]) -> None:
        self.state.sub_questions = [
            SubQuestionProgress(id=q.id, text=q.text) for q in sub_questions
        ]
        self.publish()

    def checked_in(self) -> None:
        self.state.checkins += 1
        self.publish()
