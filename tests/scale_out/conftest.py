"""Session-wide real PostgreSQL and Redis servers, started once (tests/support/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.servers import Postgres, Redis, postgres_server, redis_server


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with postgres_server(tmp_path_factory.mktemp("pg") / "data") as server:
        yield server


@pytest.fixture(scope="session")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server
