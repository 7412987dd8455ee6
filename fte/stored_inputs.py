"""An agent's input put back together from the state store, inside its activity.

A workflow's inputs and results are written into its history, and a specialist's input
is written three times (the coordinator's child-created event, the child's start, the
child's activity), so passages, claims and drafts are kept out of them: the coordinator
sends an agent the small part of its input (the query, the plan, IDs) and the names of
the artifacts that hold the rest, and the activity reads them here before the agent runs.
The agent sees exactly the input it would have been sent in full.

- `sources_from`: quoted sources given by their ID only are filled in (coordinator v2).
- `from_store` (coordinator v3): the input's source and claim lists were left empty, and
  are built here the way the coordinator built them: every stored source for the analyst;
  every noted claim with the sources it cites for the fact checker; the supported claims
  and the sources they cite for the writer.

A name that is not stored is a permanent failure (`MissingArtifact`): a retry would not
find it either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from fte.agents import analyst, fact_checker, writer
from fte.artifacts import artifact_key
from fte.contracts import AgentTask, CheckedClaim, Claim, QuotedSource, Source
from fte.errors import FteError


class MissingArtifact(FteError):
    """An artifact an agent's input names is not in the state store."""


class ArtifactReader(Protocol):
    """What is read here of `fte.artifacts.ArtifactStore`."""

    def get_many(self, task_id: str, names: Sequence[str]) -> list[Any | None]: ...


def _documents(store: ArtifactReader, task_id: str, names: list[str], what: str) -> list[Any]:
    documents = store.get_many(task_id, names)  # one round trip, not one per sub-question
    for name, document in zip(names, documents, strict=True):
        if document is None:
            raise MissingArtifact(f"the run's {what} {name!r} are not stored")
    return documents


def stored_sources(store: ArtifactReader, task_id: str, names: list[str]) -> list[Source]:
    """The run's sources, text included, from the artifacts that hold them, in order."""
    return [
        Source.model_validate(s)
        for document in _documents(store, task_id, names, "sources")
        for s in document["sources"]
    ]


def stored_checks(store: ArtifactReader, task_id: str, names: list[str]) -> list[CheckedClaim]:
    """The fact-checked claims of the fact checks named, in order."""
    return [
        CheckedClaim.model_validate(c)
        for document in _documents(store, task_id, names, "fact checks")
        for c in document["checked"]
    ]


def stored_notes(store: ArtifactReader, task_id: str, names: list[str]) -> list[Claim]:
    """The analyst's claims in the notes named, in order."""
    return [
        Claim.model_validate(c)
        for document in _documents(store, task_id, names, "notes")
        for c in document["claims"]
    ]


def needed(task: AgentTask) -> list[str]:
    """The artifacts `complete` reads for `task` (none if its input is all in the task)."""
    if task.sources_from is None and not task.from_store:
        return []
    return [*(task.sources_from or []), *((task.claims_from or []) if task.from_store else [])]


class BulkReader(ArtifactReader, Protocol):
    """`ArtifactReader` that also reads any keys at once (`ArtifactStore.get_documents`)."""

    def get_documents(self, keys: Sequence[str]) -> list[Any | None]: ...


def read_ahead(
    store: BulkReader, task_id: str, names: Sequence[str], *, with_keys: Sequence[str] = ()
) -> tuple[list[Any | None], Prefetched]:
    """The documents under `with_keys`, and a reader holding the run's artifacts `names`,
    all read in one round trip."""
    keys = [*with_keys, *(artifact_key(task_id, name) for name in names)]
    documents = store.get_documents(keys)
    extra, artifacts = documents[: len(with_keys)], documents[len(with_keys) :]
    return extra, Prefetched(store, task_id, dict(zip(names, artifacts, strict=True)))


class Prefetched:
    """An `ArtifactReader` over a run's artifacts read ahead of time (one bulk read with
    the agent's kept answer); anything else is read from `store`."""

    def __init__(
        self, store: ArtifactReader, task_id: str, documents: Mapping[str, Any | None]
    ) -> None:
        self._store = store
        self._task_id = task_id
        self._documents = documents

    def get_many(self, task_id: str, names: Sequence[str]) -> list[Any | None]:
        if task_id == self._task_id and all(name in self._documents for name in names):
            return [self._documents[name] for name in names]
        return self._store.get_many(task_id, names)


def complete(store: ArtifactReader, task: AgentTask) -> dict[str, Any]:
    """`task.inputs` with everything the coordinator left in the state store put back."""
    sources = stored_sources(store, task.task_id, task.sources_from or [])
    if task.from_store:
        build = _BUILDERS.get(task.agent)
        if build is None:
            raise MissingArtifact(f"agent {task.agent!r} cannot take its input from the store")
        return build(store, task, sources)
    if task.sources_from is not None:
        return _quoted(task, sources)
    return task.inputs


def _quoted(task: AgentTask, sources: list[Source]) -> dict[str, Any]:
    """Every quoted source (`QuotedSource`, given by its ID only) filled in."""
    by_id = {s.id: QuotedSource.of(s).model_dump(mode="json") for s in sources}
    quote_keys = set(QuotedSource.model_fields)

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == quote_keys:
                if value["id"] not in by_id:
                    raise MissingArtifact(f"source {value['id']} is not in {task.sources_from}")
                return by_id[value["id"]]
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    filled: dict[str, Any] = fill(task.inputs)
    return filled


def _analysis(store: ArtifactReader, task: AgentTask, sources: list[Source]) -> dict[str, Any]:
    inputs = analyst.AnalystInput.model_validate(task.inputs)
    quoted = [QuotedSource.of(s) for s in sources]
    return inputs.model_copy(update={"sources": quoted}).model_dump(mode="json")


def _fact_check(store: ArtifactReader, task: AgentTask, sources: list[Source]) -> dict[str, Any]:
    claims = stored_notes(store, task.task_id, task.claims_from or [])
    quoted = [QuotedSource.of(s) for s in sources]
    return fact_checker.claims_to_check(claims, quoted).model_dump(mode="json")


def _writing(store: ArtifactReader, task: AgentTask, sources: list[Source]) -> dict[str, Any]:
    inputs = writer.WriterInput.model_validate(task.inputs)
    checked = stored_checks(store, task.task_id, task.claims_from or [])
    whole = writer.WriterInput.of(inputs.query, inputs.sub_questions, checked, sources)
    return whole.model_dump(mode="json")


_BUILDERS: dict[str, Callable[[ArtifactReader, AgentTask, list[Source]], dict[str, Any]]] = {
    analyst.AGENT.name: _analysis,
    fact_checker.AGENT.name: _fact_check,
    writer.AGENT.name: _writing,
}
