"""Run artifacts in the Dapr state store, keyed by task ID and stage.

Keys are deterministic (`artifact:<task>:<name>`; Dapr reserves `||`), so a retried or replayed
activity overwrites its own artifact instead of adding a second one, and
compensation can delete every artifact a run may have written without having
to trust that the activity which wrote it reported back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc
from dapr.clients import DaprClient
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateOptions

from fte.layout import ANSWER_PREFIX, RUN_INDEX_KEY

STORE_NAME = "statestore"
KEY_PREFIX = "artifact"
# The Python SDK cannot list workflow instances, so runs started through fte are
# recorded in one index document (task ID -> query, corpus, created-at); its key is in
# fte.layout, for commands that read it without the runtime (fte.stored_runs).
INDEX_KEY = RUN_INDEX_KEY
# Schedules, likewise (name -> instance ID, spec summary, created-at).
SCHEDULES_KEY = "schedules:index"
_INDEX_WRITE_ATTEMPTS = 10
# Keys the sidecar reads at once for one bulk read, when its store has no bulk read of its own.
_BULK_READ_PARALLELISM = 16
# The notices a run sent (`notices:<task>`), kept for the web console to show; not an
# artifact of a stage, so compensation leaves them (they tell what happened) and purge
# deletes them. At-least-once like the notices themselves, capped at the newest few.
NOTICES_PREFIX = "notices"
MAX_NOTICES = 200
# Where `fte ui` serves this state store (base URL, never its token): approval notices
# link to the run's page there.
UI_ADDRESS_KEY = "ui:address"

# Stages in pipeline order; compensation walks them in reverse.
PLAN = "plan"
SOURCES = "sources"
NOTES = "notes"
CLAIMS = "claims"
DRAFT = "draft"
REPORT = "report"


def sources_for(sub_question_id: str) -> str:
    return f"{SOURCES}.{sub_question_id}"


# A lean source finder's search results, kept in the store (not in history) until its
# relevance judgement has read them; that activity deletes them, compensation too.
CANDIDATES = "candidates"


def candidates_for(sub_question_id: str) -> str:
    return f"{CANDIDATES}.{sub_question_id}"


# A gap-filling round's review, and its own sources, notes and claims (`notes.round2`).
REVIEW = "review"


def round_artifact(kind: str, round_number: int) -> str:
    return f"{kind}.round{round_number}"


def round_artifact_stages(round_number: int, gap_ids: Sequence[str]) -> list[list[str]]:
    """Every artifact round `round_number` can write, by step, in the order it writes them."""
    return [
        [round_artifact(REVIEW, round_number)],
        [
            *(candidates_for(g) for g in gap_ids),
            *(sources_for(g) for g in gap_ids),
            round_artifact(SOURCES, round_number),
        ],
        [round_artifact(NOTES, round_number)],
        [round_artifact(CLAIMS, round_number)],
    ]


def rounds_artifact_names(rounds: Iterable[Mapping[str, Any]]) -> list[str]:
    """The artifacts of a report's or a progress's rounds (`RoundReport` as JSON)."""
    return [
        name
        for r in rounds
        for stage in round_artifact_stages(
            int(r["round"]), [str(g["id"]) for g in r.get("looked_for", [])]
        )
        for name in stage
    ]


# An agent activity's answer, under the scheduled activity that asked for it and a hash of
# its input: a redelivered activity returns it instead of asking the model again
# (fte.activities.agent_activity). It expires by itself, so compensation need not know about
# it: an hour outlasts any redelivery after a failover (seconds to minutes), and a run
# started again under a purged run's ID schedules its activities anew (new keys). The
# runtime cannot list keys, so a purge deletes them only from the embedded store's file
# (`fte.stored_runs.purge_leftovers`); elsewhere they wait out the hour.
ANSWER_TTL_S = 3600
_ANSWER_TTL = {"ttlInSeconds": str(ANSWER_TTL_S)}


def answer_key(workflow_id: str, execution: str, inputs: Any) -> str:
    """Where an activity's model answer is kept: `execution` names this one scheduling of
    it (the engine's task execution ID), so a run purged and started again under the same
    ID asks the model afresh rather than finding its predecessor's answers."""
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return f"{ANSWER_PREFIX}:{workflow_id}:{execution}:{digest}"


def artifact_key(task_id: str, name: str) -> str:
    return f"{KEY_PREFIX}:{task_id}:{name}"


# Set by compensation before it deletes anything: an activity still running when its run was
# cancelled or failed (terminating a child workflow does not stop its activity) writes its
# artifact after compensation has deleted what was there, so every artifact write reads this
# afterwards and takes its write back. Write-then-check against mark-then-delete leaves no
# artifact whichever comes first. Deleted by purge.
COMPENSATED_PREFIX = "compensated"


def compensated_key(task_id: str) -> str:
    return f"{COMPENSATED_PREFIX}:{task_id}"


def notices_key(task_id: str) -> str:
    return f"{NOTICES_PREFIX}:{task_id}"


# Web pages a run's searches refused to fetch (URL -> reason), for its report's appendix;
# written by search activities as they go, so it needs no change to the workflows' data.
WEB_REFUSALS_PREFIX = "webrefusals"


def web_refusals_key(task_id: str) -> str:
    return f"{WEB_REFUSALS_PREFIX}:{task_id}"


def refused_pages(document: Any | None) -> dict[str, str]:
    """URL -> reason of the web pages a run's searches refused, from the document stored
    under `web_refusals_key` (None: none refused)."""
    refused: dict[str, str] = document["refused"] if document else {}
    return refused


def run_artifact_stages(sub_question_ids: Sequence[str]) -> list[list[str]]:
    """Every artifact a run can write, grouped by stage, in the order the pipeline writes them."""
    return [
        [PLAN],
        [*(sources_for(q) for q in sub_question_ids), SOURCES],
        [NOTES],
        [CLAIMS],
        [DRAFT],
        [REPORT],
    ]


def run_artifact_names(sub_question_ids: Sequence[str]) -> list[str]:
    """Every artifact a run can write: its stages' (`run_artifact_stages`, what coordinator
    v1 compensates), and the candidates v2's lean source finders keep until judged."""
    stages = [name for stage in run_artifact_stages(sub_question_ids) for name in stage]
    return [*stages, *(candidates_for(q) for q in sub_question_ids)]


class StateReadError(Exception):
    """The state store failed to read a key of a bulk read (retried by the activity's policy)."""


class ArtifactStore:
    """JSON documents in the Dapr state store, through the sidecar's state API."""

    def __init__(self, client: DaprClient) -> None:
        self._client = client

    def put(self, task_id: str, name: str, document: Any) -> str:
        key = artifact_key(task_id, name)
        self._client.save_state(STORE_NAME, key, json.dumps(document))
        self._unless_compensated(task_id, key)
        return key

    def _unless_compensated(self, task_id: str, key: str) -> None:
        """Take back a write that came after the run's compensation began (COMPENSATED_PREFIX)."""
        if self._client.get_state(STORE_NAME, compensated_key(task_id)).data:
            self._client.delete_state(STORE_NAME, key)

    def mark_compensated(self, task_id: str) -> None:
        self._client.save_state(STORE_NAME, compensated_key(task_id), "1")

    def forget_compensated(self, task_id: str) -> None:
        self._client.delete_state(STORE_NAME, compensated_key(task_id))

    def get(self, task_id: str, name: str) -> Any | None:
        data = self._client.get_state(STORE_NAME, artifact_key(task_id, name)).data
        return json.loads(data) if data else None

    def get_many(self, task_id: str, names: Sequence[str]) -> list[Any | None]:
        """Several of a run's artifacts in the order named (None for one not stored), in one
        round trip to the sidecar: gathering sources reads one result per sub-question."""
        return self.get_documents([artifact_key(task_id, name) for name in names])

    def get_documents(self, keys: Sequence[str]) -> list[Any | None]:
        """The JSON documents stored under `keys`, in that order (None for one not stored),
        in one round trip: artifacts and a kept model answer together, say."""
        if not keys:
            return []
        keys = list(keys)
        response = self._client.get_bulk_state(
            STORE_NAME, keys, parallelism=min(len(keys), _BULK_READ_PARALLELISM)
        )
        found = {}
        for item in response.items:
            if item.error:
                raise StateReadError(f"reading {item.key} from the state store: {item.error}")
            found[item.key] = json.loads(item.data) if item.data else None
        return [found.get(key) for key in keys]

    def get_document(self, key: str) -> Any | None:
        """A JSON document stored under `key` that belongs to no run (the web page cache)."""
        data = self._client.get_state(STORE_NAME, key).data
        return json.loads(data) if data else None

    def put_document(self, key: str, document: Any, *, ttl_s: int | None = None) -> None:
        """`ttl_s`: the state store deletes the document after that many seconds."""
        metadata = {"ttlInSeconds": str(ttl_s)} if ttl_s is not None else None
        self._client.save_state(STORE_NAME, key, json.dumps(document), state_metadata=metadata)

    def remember_answer(
        self, key: str, reply: dict[str, Any], *, with_artifact: tuple[str, str, Any] | None = None
    ) -> None:
        """Keep a model answer (for `ANSWER_TTL_S`); `with_artifact` = (task ID, name,
        document) is stored in the same transaction, so an answer is never remembered
        without the artifact it produced, and one round trip is saved."""
        if with_artifact is None:
            self._client.save_state(STORE_NAME, key, json.dumps(reply), state_metadata=_ANSWER_TTL)
            return
        task_id, name, document = with_artifact
        self.put_with(task_id, name, document, answer=(key, reply))

    def put_with(
        self,
        task_id: str,
        name: str,
        document: Any,
        *,
        answer: tuple[str, dict[str, Any]] | None = None,
        deleting: Sequence[str] = (),
    ) -> str:
        """Store a run's artifact in one state transaction with a model answer to remember
        (key, reply: see `remember_answer`) and the deletion of the run's artifacts named
        in `deleting`; one round trip where there were up to three."""
        key = artifact_key(task_id, name)
        operations = [TransactionalStateOperation(key=key, data=json.dumps(document))]
        if answer is not None:
            memo, reply = answer
            operations.append(
                TransactionalStateOperation(key=memo, data=json.dumps(reply), metadata=_ANSWER_TTL)
            )
        operations += [
            TransactionalStateOperation(
                key=artifact_key(task_id, gone), operation_type=TransactionOperationType.delete
            )
            for gone in deleting
        ]
        self._client.execute_state_transaction(STORE_NAME, operations=operations)
        self._unless_compensated(task_id, key)
        return key

    def update_index(
        self, change: Callable[[dict[str, Any]], None], *, key: str = INDEX_KEY
    ) -> None:
        """Read-modify-write an index (default: the run index) under optimistic concurrency."""
        for _ in range(_INDEX_WRITE_ATTEMPTS):
            response = self._client.get_state(STORE_NAME, key)
            index = json.loads(response.data) if response.data else _empty_index(key)
            change(index)
            try:
                self._client.save_state(
                    STORE_NAME,
                    key,
                    json.dumps(index),
                    etag=response.etag or None,
                    options=StateOptions(concurrency=Concurrency.first_write),
                )
                return
            except grpc.RpcError as exc:
                # Another process wrote the index since we read it: read again.
                if exc.code() not in (grpc.StatusCode.ABORTED, grpc.StatusCode.FAILED_PRECONDITION):
                    raise
        raise RuntimeError("the run index stayed contended; try again")

    def schedules(self) -> dict[str, dict[str, Any]]:
        data = self._client.get_state(STORE_NAME, SCHEDULES_KEY).data
        schedules: dict[str, dict[str, Any]] = json.loads(data)["schedules"] if data else {}
        return schedules

    def runs(self) -> dict[str, dict[str, Any]]:
        data = self._client.get_state(STORE_NAME, INDEX_KEY).data
        runs: dict[str, dict[str, Any]] = json.loads(data)["runs"] if data else {}
        return runs

    def append_notice(self, task_id: str, notice: dict[str, Any]) -> None:
        def add(document: dict[str, Any]) -> None:
            document["notices"] = [*document["notices"], notice][-MAX_NOTICES:]

        self.update_index(add, key=notices_key(task_id))

    def notices(self, task_id: str) -> list[dict[str, Any]]:
        data = self._client.get_state(STORE_NAME, notices_key(task_id)).data
        notices: list[dict[str, Any]] = json.loads(data)["notices"] if data else []
        return notices

    def delete_notices(self, task_id: str) -> None:
        self._client.delete_state(STORE_NAME, notices_key(task_id))

    def add_web_refusals(self, task_id: str, refused: Mapping[str, str]) -> None:
        def add(document: dict[str, Any]) -> None:
            document["refused"].update(refused)

        self.update_index(add, key=web_refusals_key(task_id))
        self._unless_compensated(task_id, web_refusals_key(task_id))

    def web_refusals(self, task_id: str) -> dict[str, str]:
        data = self._client.get_state(STORE_NAME, web_refusals_key(task_id)).data
        return refused_pages(json.loads(data) if data else None)

    def delete_web_refusals(self, task_id: str) -> None:
        self._client.delete_state(STORE_NAME, web_refusals_key(task_id))

    def ui_address(self) -> str | None:
        data = self._client.get_state(STORE_NAME, UI_ADDRESS_KEY).data
        return str(json.loads(data)["url"]) if data else None

    def set_ui_address(self, url: str | None) -> None:
        if url is None:
            self._client.delete_state(STORE_NAME, UI_ADDRESS_KEY)
        else:
            self._client.save_state(STORE_NAME, UI_ADDRESS_KEY, json.dumps({"url": url}))

    def delete(self, task_id: str, names: Iterable[str]) -> list[str]:
        deleted = []
        for name in names:
            key = artifact_key(task_id, name)
            self._client.delete_state(STORE_NAME, key)
            deleted.append(key)
        return deleted


def _empty_index(key: str) -> dict[str, Any]:
    if key.startswith(f"{NOTICES_PREFIX}:"):
        return {"notices": []}
    if key.startswith(f"{WEB_REFUSALS_PREFIX}:"):
        return {"refused": {}}
    return {"schedules": {}} if key == SCHEDULES_KEY else {"runs": {}}
