"""ArtifactStore against the real sidecar's state API (SQLite state store)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fte import stored_inputs
from fte.artifacts import ArtifactStore, artifact_key
from fte.dapr_clients import close_dapr_client, dapr_client
from fte.dapr_stack import RuntimeEndpoint

pytestmark = pytest.mark.engine


@pytest.fixture
def store(dapr_stack: RuntimeEndpoint) -> Iterator[ArtifactStore]:
    client = dapr_client(dapr_stack)
    try:
        yield ArtifactStore(client)
    finally:
        close_dapr_client(client)


def test_bulk_read_keeps_the_order_named_and_marks_what_is_missing(
    store: ArtifactStore, instance_id: str
) -> None:
    names = [f"sources.q{i}" for i in range(1, 12)]
    for i, name in enumerate(names):
        store.put(instance_id, name, {"n": i, "text": "é" * i})
    asked = [names[7], "sources.absent", names[0], *names[1:7], names[10]]
    documents = store.get_many(instance_id, asked)
    assert documents[1] is None
    present = [d for d in documents if d is not None]
    assert [d["n"] for d in present] == [7, 0, 1, 2, 3, 4, 5, 6, 10]
    assert present[-1]["text"] == "é" * 10
    assert store.get_many(instance_id, []) == []
    # Another run's artifacts of the same names are not this run's.
    assert store.get_many(f"{instance_id}-other", [names[0]]) == [None]


def test_an_agent_input_naming_a_missing_artifact_says_which(
    store: ArtifactStore, instance_id: str
) -> None:
    store.put(instance_id, "sources.q1", {"sources": []})
    with pytest.raises(stored_inputs.MissingArtifact, match="'sources.q2'"):
        stored_inputs.stored_sources(store, instance_id, ["sources.q1", "sources.q2"])


def test_an_artifact_its_answer_and_a_deletion_are_written_together(
    store: ArtifactStore, instance_id: str
) -> None:
    store.put(instance_id, "candidates.q1", {"passages": ["a", "b"]})
    memo = f"answer:{instance_id}:test"
    store.put_with(
        instance_id,
        "sources.q1",
        {"passages": ["b"]},
        answer=(memo, {"result": {"relevant": ["b"]}}),
        deleting=["candidates.q1"],
    )
    assert store.get_many(instance_id, ["sources.q1", "candidates.q1"]) == [
        {"passages": ["b"]},
        None,
    ]
    assert store.get_document(memo) == {"result": {"relevant": ["b"]}}


def test_a_write_after_compensation_began_takes_itself_back(
    store: ArtifactStore, instance_id: str
) -> None:
    store.mark_compensated(instance_id)
    try:
        store.put_with(instance_id, "sources.q1", {"passages": []}, deleting=["candidates.q1"])
        assert store.get_many(instance_id, ["sources.q1"]) == [None]
    finally:
        store.forget_compensated(instance_id)


def test_an_agents_answer_and_its_input_artifacts_are_read_together(
    store: ArtifactStore, instance_id: str
) -> None:
    store.put(instance_id, "sources", {"sources": []})
    store.put_document(f"test-answer:{instance_id}", {"result": {}, "usage": {}})
    keys = [
        f"test-answer:{instance_id}",
        artifact_key(instance_id, "sources"),
        artifact_key(instance_id, "notes"),
    ]
    assert store.get_documents(keys) == [{"result": {}, "usage": {}}, {"sources": []}, None]
    assert store.get_documents([]) == []

    # What was read ahead is answered as it was read; anything else from the store.
    [answer], ahead = stored_inputs.read_ahead(
        store, instance_id, ["sources"], with_keys=[f"test-answer:{instance_id}"]
    )
    assert answer == {"result": {}, "usage": {}}
    store.put(instance_id, "sources", {"sources": ["written since"]})
    store.put(instance_id, "notes", {"claims": []})
    assert ahead.get_many(instance_id, ["sources"]) == [{"sources": []}]
    assert ahead.get_many(instance_id, ["sources", "notes"]) == [
        {"sources": ["written since"]},
        {"claims": []},
    ]
    assert ahead.get_many(f"{instance_id}-other", ["sources"]) == [None]
