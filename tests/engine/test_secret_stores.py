"""The shipped `local.env` secret stores serve only the secrets their components need.

`dapr run` hands the sidecar the whole environment of the shell (OPENAI_API_KEY included),
so these tests start the real daprd the same way, with the shipped component files, and ask
its secrets API for the LLM key.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from fte.dapr_build import find_binaries
from tests.support import PROJECT_ROOT
from tests.support.processes import stop, wait_for

pytestmark = pytest.mark.engine

COMPONENTS = PROJECT_ROOT / "components"
STORE = "envvars"
SECRET_PREFIX = "FTE_SECRET_"
LLM_KEY = "sk-proj-SECRETS-API-MUST-NOT-SERVE-THIS-0123"
_SECRET_REF = re.compile(r"secretKeyRef:\s*\n\s*name:\s*(\S+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return int(response.status)


def _healthy(url: str) -> bool:
    with contextlib.suppress(OSError):
        return _get(url)[0] in (200, 204)
    return False


@contextlib.contextmanager
def daprd(
    resources: Path, env: Mapping[str, str], log: Path, config: Path | None = None
) -> Iterator[str]:
    """The real daprd on its own (no actors needed to serve secrets and state), as `dapr run`
    starts it: with the caller's whole environment. Yields its HTTP base URL."""
    http, grpc, internal = _free_port(), _free_port(), _free_port()
    argv = [
        str(find_binaries().daprd),
        "--app-id", "secrets-test",
        "--mode", "standalone",
        "--dapr-http-port", str(http),
        "--dapr-grpc-port", str(grpc),
        "--dapr-internal-grpc-port", str(internal),
        "--dapr-listen-addresses", "127.0.0.1",
        "--resources-path", str(resources),
        "--enable-metrics=false",
        *(["--config", str(config)] if config else []),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=resources, env=dict(env), stdout=out, stderr=out)
        base = f"http://127.0.0.1:{http}/v1.0"
        try:

            def up() -> bool:
                assert proc.poll() is None, log.read_text()
                return _healthy(f"{base}/healthz")

            wait_for(up, "daprd to become healthy", timeout=60)
            yield base
        finally:
            stop(proc)


def _needed_secrets(variant: str) -> set[str]:
    """The secret names the variant's components reference."""
    return {
        name
        for path in (COMPONENTS / variant).glob("*.yaml")
        for name in _SECRET_REF.findall(path.read_text())
    }


@pytest.mark.parametrize("variant", ["redis", "postgres"])
def test_shipped_secret_store_serves_its_secrets_and_not_the_llm_key(
    variant: str, tmp_path: Path
) -> None:
    needed = _needed_secrets(variant)
    assert needed, f"components/{variant} references no secret"
    resources = tmp_path / "resources"
    resources.mkdir()
    # The secret store alone: the state store and pub/sub would need a live Redis/PostgreSQL.
    shutil.copy(COMPONENTS / variant / "secretstore.yaml", resources)
    env = {
        **os.environ,
        "OPENAI_API_KEY": LLM_KEY,
        **{f"{SECRET_PREFIX}{name}": f"value-of-{name}" for name in needed},
    }
    with daprd(resources, env, tmp_path / "daprd.log") as base:
        for name in needed:
            status, body = _get(f"{base}/secrets/{STORE}/{name}")
            assert (status, json.loads(body)) == (200, {name: f"value-of-{name}"})
        status, body = _get(f"{base}/secrets/{STORE}/OPENAI_API_KEY")
        assert LLM_KEY not in body, (status, body)
        status, body = _get(f"{base}/secrets/{STORE}/bulk")
        assert status == 200
        assert LLM_KEY not in body
        assert set(json.loads(body)) == needed


def test_production_config_denies_the_secrets_api_while_components_get_their_secrets(
    tmp_path: Path,
) -> None:
    """With the shipped Configuration the app can read no secret at all through Dapr; the
    components still resolve their `secretKeyRef`s (a SQLite store stands in for Redis)."""
    resources = tmp_path / "resources"
    resources.mkdir()
    shutil.copy(COMPONENTS / "redis" / "secretstore.yaml", resources)
    (resources / "statestore.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: statestore\n"
        "spec:\n  type: state.sqlite\n  version: v1\n  metadata:\n"
        "    - name: connectionString\n      secretKeyRef:\n        name: SQLITE_DB\n"
        f"        key: SQLITE_DB\nauth:\n  secretStore: {STORE}\n"
    )
    database = tmp_path / "from-secret.db"
    env = {**os.environ, "OPENAI_API_KEY": LLM_KEY, f"{SECRET_PREFIX}SQLITE_DB": str(database)}
    config = COMPONENTS / "production-config.yaml"
    with daprd(resources, env, tmp_path / "daprd.log", config=config) as base:
        for name in ("OPENAI_API_KEY", "SQLITE_DB"):
            status, body = _get(f"{base}/secrets/{STORE}/{name}")
            assert status == 403, (name, status, body)
            assert LLM_KEY not in body and str(database) not in body
        assert json.loads(_get(f"{base}/secrets/{STORE}/bulk")[1]) == {}
        assert _post(f"{base}/state/statestore", b'[{"key": "k", "value": "v"}]') == 204
        status, body = _get(f"{base}/state/statestore/k")
        assert (status, json.loads(body)) == (200, "v")
    assert database.is_file(), "the state store got its connection string from the secret"
