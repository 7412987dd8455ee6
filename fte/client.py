"""Client side of a research run: schedule, follow, answer, cancel, fetch the report."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dapr.ext.workflow as wf
import grpc
from dapr.clients import DaprClient

from fte import artifacts, names
from fte.artifacts import ArtifactStore
from fte.contracts import TERMINAL_STAGES, ApprovalDecision, Outcome, Progress, RunConfig
from fte.dapr_clients import close_dapr_client, dapr_client, workflow_client
from fte.dapr_stack import RuntimeEndpoint
from fte.errors import RuntimeSetupError
from fte.errors import TaskStateError as TaskStateError
from fte.errors import UnknownTaskError as UnknownTaskError

_STATE_READ_ATTEMPTS = 5
# How long a follower waits for a sidecar the launcher is restarting before giving up.
RUNTIME_PATIENCE_S = 60.0


# States `runs()` reports for runs that will not progress any more ("missing": listed,
# but its workflow history is gone, e.g. purged by the state retention policy).
SETTLED_STATES = frozenset({"completed", "failed", "rejected", "cancelled", "missing"})


@dataclass(frozen=True)
class RunSummary:
    task_id: str
    state: str
    query: str
    created_at: datetime
    schedule: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """What a client can see of a run at one moment."""

    task_id: str
    runtime_status: str
    progress: Progress | None
    outcome: Outcome | None
    failure: str | None

    @property
    def finished(self) -> bool:
        return self.runtime_status in ("COMPLETED", "FAILED", "TERMINATED")

    @property
    def end_state(self) -> str | None:
        """completed / failed / rejected / cancelled once finished, else None."""
        if not self.finished:
            return None
        if self.outcome is not None:
            return self.outcome.status
        if self.progress is not None and self.progress.stage in TERMINAL_STAGES:
            return self.progress.stage
        return "failed" if self.runtime_status == "FAILED" else "cancelled"


class ResearchClient:
    def __init__(self, endpoint: RuntimeEndpoint) -> None:
        self._endpoint = endpoint
        self._wf = workflow_client(endpoint)
        dapr = dapr_client(endpoint)
        self._dapr: DaprClient | None = dapr
        self.store = ArtifactStore(dapr)

    @classmethod
    def borrowing(cls, workflows: wf.DaprWorkflowClient, store: ArtifactStore) -> ResearchClient:
        """A client over connections someone else owns (an activity's); `close` leaves them."""
        client = cls.__new__(cls)
        client._wf, client._dapr, client.store = workflows, None, store
        return client

    @property
    def workflows(self) -> wf.DaprWorkflowClient:
        return self._wf

    def close(self) -> None:
        if self._dapr is None:
            return
        self._wf.close()
        close_dapr_client(self._dapr)

    def __enter__(self) -> ResearchClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, config: RunConfig, task_id: str, *, schedule: str | None = None) -> str:
        existing = self._wf.get_workflow_state(task_id, fetch_payloads=False)
        if existing is not None:
            raise TaskStateError(
                f"task {task_id} already exists ({existing.runtime_status.name}); "
                "choose another --id or purge it first"
            )
        created_at = datetime.now(UTC).isoformat(timespec="seconds")

        def record(index: dict[str, Any]) -> None:
            index["runs"][task_id] = {
                "query": config.query,
                "corpus": config.corpus_dir,
                "created_at": created_at,
            }
            if schedule is not None:
                index["runs"][task_id]["schedule"] = schedule

        # Indexed first: a run that exists is always listed (an index entry whose
        # schedule failed shows up as "unknown" and can be purged).
        self.store.update_index(record)
        return self._wf.schedule_new_workflow(
            names.COORDINATOR, input=config.model_dump(mode="json"), instance_id=task_id
        )

    def runs(self) -> list[RunSummary]:
        """Runs started through fte, newest first, with their current state."""
        summaries = []
        for task_id, meta in self.store.runs().items():
            try:
                snap = self.snapshot(task_id)
                state = snap.end_state or (snap.progress.stage if snap.progress else "pending")
            except UnknownTaskError:
                state = "missing"
            summaries.append(
                RunSummary(
                    task_id=task_id,
                    state=state,
                    query=str(meta.get("query", "")),
                    created_at=datetime.fromisoformat(meta["created_at"]),
                    schedule=meta.get("schedule"),
                )
            )
        return sorted(summaries, key=lambda r: r.created_at, reverse=True)

    def purge(self, task_id: str) -> None:
        """Delete a finished run: workflow history (with children), artifacts, index entry."""
        indexed = task_id in self.store.runs()
        try:
            snap = self.snapshot(task_id)
        except UnknownTaskError:
            if not indexed:
                raise
            snap = None
        if snap is not None and not snap.finished:
            raise TaskStateError(
                f"task {task_id} is still running; cancel it first (fte cancel {task_id})"
            )
        if snap is not None:
            self._wf.purge_workflow(task_id, recursive=True)
        plan = self.store.get(task_id, artifacts.PLAN) or {}
        sub_question_ids = [q["id"] for q in plan.get("sub_questions", [])]
        # Gap-filling rounds' artifacts are named by the report, so read it before deleting it.
        report = self.store.get(task_id, artifacts.REPORT) or {}
        rounds = artifacts.rounds_artifact_names(report.get("rounds", []))
        self.store.delete(task_id, [*artifacts.run_artifact_names(sub_question_ids), *rounds])
        self.store.forget_compensated(task_id)
        self.store.delete_notices(task_id)
        self.store.delete_web_refusals(task_id)
        self.store.update_index(lambda index: index["runs"].pop(task_id, None))

    def purge_older_than(self, age: timedelta) -> list[str]:
        cutoff = datetime.now(UTC) - age
        purged = []
        for run in self.runs():
            if run.created_at < cutoff and run.state in SETTLED_STATES:
                self.purge(run.task_id)
                purged.append(run.task_id)
        return purged

    def _state(self, task_id: str) -> wf.WorkflowState | None:
        # The sidecar reads a workflow's state as several keys without a transaction,
        # so a read racing the engine's write can fail ("inbox key ... missing from
        # state store"); the next read sees a consistent state.
        for attempt in range(_STATE_READ_ATTEMPTS):
            try:
                return self._wf.get_workflow_state(task_id, fetch_payloads=True)
            except grpc.RpcError as exc:
                if exc.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE):
                    raise
                if attempt == _STATE_READ_ATTEMPTS - 1:
                    raise RuntimeSetupError(
                        f"could not read the state of task {task_id} from the Dapr sidecar: "
                        f"{exc.details()}"
                    ) from exc
                time.sleep(0.1 * (attempt + 1))
        return None

    def workflow_state(self, instance_id: str) -> wf.WorkflowState | None:
        """Any workflow instance's state with payloads (None if there is none), read-race safe."""
        return self._state(instance_id)

    def snapshot(self, task_id: str) -> Snapshot:
        state = self._state(task_id)
        if state is None:
            raise UnknownTaskError.no_run(task_id)
        progress = None
        if state.serialized_custom_status:
            progress = Progress.model_validate_json(_unquote(state.serialized_custom_status))
        outcome = None
        if state.serialized_output:
            try:
                outcome = Outcome.model_validate_json(state.serialized_output)
            except ValueError:
                outcome = None
        failure = state.failure_details.message if state.failure_details else None
        return Snapshot(task_id, state.runtime_status.name, progress, outcome, failure)

    def follow(self, task_id: str, *, poll_s: float = 0.5) -> Iterator[Snapshot]:
        """Yield a snapshot every `poll_s` seconds, and at once when the run ends (the last
        one is final).

        Between snapshots the engine is asked to wait for the run's completion (a blocking
        call it answers the moment the run ends), not a sleep: a run that ends just after a
        snapshot is noticed then, not up to a poll interval later.
        """
        while True:
            snap = self.snapshot_through_restarts(task_id)
            yield snap
            if snap.finished:
                return
            try:
                # Typed int by the SDK, used as a float deadline (gRPC timeout, monotonic).
                self._wf.wait_for_workflow_completion(
                    task_id,
                    fetch_payloads=False,
                    timeout_in_seconds=poll_s,  # type: ignore[arg-type]
                )
            except TimeoutError:
                pass  # still running: time for the next snapshot
            except grpc.RpcError:
                time.sleep(poll_s)  # the sidecar is restarting: the snapshot waits it out

    def check_runtime(self) -> None:
        """Raise what the launcher could not mend (a role that keeps dying, a lost owner)."""
        problem = self._endpoint.problem()
        if problem is not None:
            raise RuntimeSetupError(problem)

    def snapshot_through_restarts(self, task_id: str) -> Snapshot:
        """A snapshot, waiting out a sidecar that is being restarted (for a while).

        The launcher restarts a runtime process that died, or takes the stack over when its
        owner died; reads fail meanwhile. What it cannot mend is raised at once.
        """
        give_up_at = time.monotonic() + RUNTIME_PATIENCE_S
        while True:
            self.check_runtime()
            try:
                return self.snapshot(task_id)
            except RuntimeSetupError:
                if time.monotonic() > give_up_at:
                    raise
                time.sleep(1.0)

    def wait(self, task_id: str, *, timeout_s: float) -> Snapshot:
        deadline = time.monotonic() + timeout_s
        while True:
            snap = self.snapshot_through_restarts(task_id)
            if snap.finished:
                return snap
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {snap.runtime_status} after {timeout_s}s")
            time.sleep(0.2)

    def _require_running(self, task_id: str, action: str) -> Snapshot:
        snap = self.snapshot(task_id)
        if snap.finished:
            raise TaskStateError(
                f"cannot {action} task {task_id}: it already ended ({snap.end_state})"
            )
        return snap

    def approve(self, task_id: str, decision: ApprovalDecision) -> None:
        snap = self._require_running(task_id, "approve" if decision.approved else "reject")
        if snap.progress is None or snap.progress.stage != "awaiting_approval":
            stage = snap.progress.stage if snap.progress else "starting"
            raise TaskStateError(
                f"task {task_id} is not waiting for approval (stage: {stage}); "
                "only runs started with --approve-plan wait for one"
            )
        self._wf.raise_workflow_event(
            task_id, names.APPROVAL_EVENT, data=decision.model_dump(mode="json")
        )

    def cancel(self, task_id: str, reason: str = "") -> None:
        self._require_running(task_id, "cancel")
        self._wf.raise_workflow_event(task_id, names.CANCEL_EVENT, data={"reason": reason})

    def report(self, task_id: str) -> dict[str, Any]:
        snap = self.snapshot(task_id)
        if snap.end_state != "completed":
            raise TaskStateError(
                f"task {task_id} has no report: it is "
                f"{snap.end_state or snap.runtime_status.lower()}"
                + (f" ({snap.progress.reason})" if snap.progress and snap.progress.reason else "")
            )
        document = self.store.get(task_id, artifacts.REPORT)
        if document is None:
            raise TaskStateError(f"task {task_id} completed but its report artifact is missing")
        return dict(document)


def _unquote(custom_status: str) -> str:
    """Custom status arrives JSON-encoded once more (a JSON string holding our JSON)."""
    value = json.loads(custom_status)
    return value if isinstance(value, str) else json.dumps(value)
