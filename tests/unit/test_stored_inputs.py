"""Which artifacts an agent's activity reads its input from (`stored_inputs.needed`): what
it reads ahead in one round trip with the agent's kept answer."""

from __future__ import annotations

from typing import Any

import pytest

from fte import stored_inputs
from fte.contracts import AgentTask, ModelEndpoint


def task(**fields: Any) -> AgentTask:
    return AgentTask(
        task_id="r1",
        agent=fields.pop("agent", "analyst"),
        model="m",
        endpoint=ModelEndpoint(offline=True),
        inputs={},
        **fields,
    )


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({}, []),  # the whole input is in the task
        ({"sources_from": ["sources"]}, ["sources"]),  # quoted sources filled in
        (
            {"sources_from": ["sources", "sources.round1"], "from_store": True},
            ["sources", "sources.round1"],
        ),
        (
            {
                "agent": "fact_checker",
                "sources_from": ["sources"],
                "claims_from": ["notes", "notes.round1"],
                "from_store": True,
            },
            ["sources", "notes", "notes.round1"],
        ),
        # Claims are read only by an input built from the store.
        ({"sources_from": ["sources"], "claims_from": ["notes"]}, ["sources"]),
    ],
    ids=["in-task", "quoted", "analyst", "fact-checker", "claims-unused"],
)
def test_an_agent_reads_ahead_what_its_input_is_built_from(
    fields: dict[str, Any], names: list[str]
) -> None:
    assert stored_inputs.needed(task(**fields)) == names
