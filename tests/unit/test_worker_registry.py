"""Registry rules for versioned workflows, checked when a worker is built (no sidecar needed)."""

from __future__ import annotations

from typing import Any

import pytest

from fte.worker import Registrar, Registry, WorkflowWorker


def _workflow(ctx: Any, inp: Any) -> None:
    return None


def _build(register: Registrar) -> WorkflowWorker:
    # Building a worker registers everything; it connects only on start().
    return WorkflowWorker(host="127.0.0.1", port=1, register=register)


def test_versions_with_one_latest_register() -> None:
    def register(registry: Registry) -> None:
        registry.workflow("w", _workflow, version="v1")
        registry.workflow("w", _workflow, version="v2", latest=True)
        registry.workflow("plain", _workflow)

    _build(register)


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        pytest.param(
            [{"version": "v1", "latest": True}, {}],
            "already registered with versions",
            id="versioned-then-unversioned",
        ),
        pytest.param(
            [{}, {"version": "v1", "latest": True}],
            "already registered without a version",
            id="unversioned-then-versioned",
        ),
        pytest.param(
            [{"version": "v1", "latest": True}, {"version": "v2", "latest": True}],
            "'v1' is already the latest version",
            id="two-latest",
        ),
        pytest.param([{"version": "v1"}], "none of the versions", id="no-latest"),
        pytest.param([{"latest": True}], "latest=True needs a version", id="latest-unversioned"),
        pytest.param([{"version": "", "latest": True}], "must not be empty", id="empty-version"),
        pytest.param(
            [{"version": "v1", "latest": True}, {"version": "v1"}],
            "'v1' of 'w' orchestrator already exists",
            id="repeated-version",
        ),
    ],
)
def test_misregistered_versions_fail_at_build(calls: list[dict[str, Any]], message: str) -> None:
    def register(registry: Registry) -> None:
        for kwargs in calls:
            registry.workflow("w", _workflow, **kwargs)

    with pytest.raises(ValueError, match=message):
        _build(register)
