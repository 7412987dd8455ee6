"""Shared fixtures: the real Dapr stack, started once per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import dapr.ext.workflow as wf
import pytest

from fte.api_tokens import sdk_token
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack, RuntimeEndpoint
from fte.logs import reset_logging


@pytest.fixture(scope="session", autouse=True)
def corpus_index_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Corpus indexes built by the session's tests go to a temporary directory, not `.fte`."""
    os.environ.setdefault("FTE_INDEX_DIR", str(tmp_path_factory.mktemp("corpus-index")))


@pytest.fixture(scope="session")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """The embedded placement + scheduler + daprd stack on a fresh data directory."""
    # Never let an outer `dapr run` environment redirect the tests to another sidecar.
    for var in ("DAPR_GRPC_ENDPOINT", "DAPR_GRPC_PORT", "DAPR_HTTP_PORT"):
        os.environ.pop(var, None)
    stack = EmbeddedStack(data_dir=tmp_path_factory.mktemp("dapr-data"), binaries=find_binaries())
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def private_stack(tmp_path: Path) -> Iterator[EmbeddedStack]:
    """A started stack of the test's own, so no other worker can take its work items."""
    stack = EmbeddedStack(data_dir=tmp_path / "data", binaries=find_binaries())
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def dapr_stack(embedded_stack: EmbeddedStack) -> RuntimeEndpoint:
    assert embedded_stack.endpoint is not None
    return embedded_stack.endpoint


@pytest.fixture
def wf_client(dapr_stack: RuntimeEndpoint) -> Iterator[wf.DaprWorkflowClient]:
    with sdk_token(dapr_stack.api_token):
        client = wf.DaprWorkflowClient(host=dapr_stack.host, port=str(dapr_stack.grpc_port))
    yield client
    client.close()


@pytest.fixture
def instance_id(request: pytest.FixtureRequest) -> str:
    """A unique workflow instance ID per test, so tests never share engine state."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def count_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "counts"
    directory.mkdir()
    return directory


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """In-process CLI calls configure logging globally; undo it so tests stay independent."""
    yield
    reset_logging()
