"""`fte doctor` says which state store, pub/sub and tracing the sidecar uses, and warns
about a production state store that does not hold the actors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fte.backends import render
from fte.dapr_build import find_binaries
from fte.dapr_stack import EmbeddedStack
from tests.support import PROJECT_ROOT
from tests.support.servers import Postgres, Redis

pytestmark = pytest.mark.engine


def _doctor(data_dir: Path, env: dict[str, str], *extra: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "fte", "doctor", "--data-dir", str(data_dir), *extra],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


def _clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DAPR_", "OTEL_")) and k != "FTE_DATA_DIR"
    }


def test_doctor_reports_the_embedded_defaults(tmp_path: Path) -> None:
    report, stderr = _doctor(tmp_path / "data", _clean_env())
    sidecar = report["sidecar"]
    assert sidecar["app_id"] == "fte"
    assert sidecar["state_stores"] == [
        {"name": "statestore", "type": "state.sqlite/v1", "actor_state_store": True}
    ]
    assert sidecar["pubsubs"] == [{"name": "pubsub", "type": "pubsub.in-memory/v1"}]
    assert sidecar["tracing"] == {
        "sidecar": "off (samplingRate 0)",
        "worker": "off (no OTEL_EXPORTER_OTLP_ENDPOINT)",
    }
    assert report["warnings"] == [] and "warning" not in stderr.lower()
    assert report["workflow_output"] == "OK"


def test_doctor_warns_when_the_production_store_does_not_hold_the_actors(
    postgres: Postgres, redis: Redis, tmp_path: Path
) -> None:
    # The app's store on PostgreSQL without actorStateStore; the actors in a SQLite store
    # beside it: workflows run, but their history is not where the operator thinks.
    backends = render(
        tmp_path / "components", state_url=postgres.new_database(), pubsub_url=redis.url(3)
    )
    statestore = backends.components_dir / "statestore.yaml"
    statestore.write_text(
        statestore.read_text().replace("  - name: actorStateStore\n    value: 'true'\n", "")
    )
    assert "actorStateStore" not in statestore.read_text()
    (backends.components_dir / "actors.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: actors\nspec:\n"
        "  type: state.sqlite\n  version: v1\n  metadata:\n"
        "  - name: connectionString\n    value: actors.db\n"
        "  - name: actorStateStore\n    value: 'true'\n"
    )
    stack = EmbeddedStack(
        data_dir=tmp_path / "sidecar",
        components_dir=backends.components_dir,
        binaries=find_binaries(),
        daprd_env=backends.daprd_env,
    )
    with stack as endpoint:
        env = {
            **_clean_env(),
            "DAPR_GRPC_PORT": str(endpoint.grpc_port),
            "DAPR_HTTP_PORT": str(endpoint.http_port),
            "DAPR_API_TOKEN": endpoint.api_token or "",
        }
        report, stderr = _doctor(
            tmp_path / "client", env, "--resources-path", str(backends.components_dir)
        )

    sidecar = report["sidecar"]
    assert {s["name"]: (s["type"], s["actor_state_store"]) for s in sidecar["state_stores"]} == {
        "statestore": ("state.postgresql/v2", False),
        "actors": ("state.sqlite/v1", True),
    }
    assert sidecar["pubsubs"] == [{"name": "pubsub", "type": "pubsub.redis/v1"}]
    assert sidecar["tracing"]["sidecar"] == "off (samplingRate 0)"  # from the files given
    [warning] = report["warnings"]
    assert "'statestore' (state.postgresql) lacks actorStateStore" in warning
    assert "go to 'actors'" in warning
    assert "lacks actorStateStore" in stderr


def test_doctor_on_an_external_sidecar_without_its_files_says_what_it_cannot_see(
    private_stack: EmbeddedStack, tmp_path: Path
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None
    env = {
        **_clean_env(),
        "DAPR_GRPC_PORT": str(endpoint.grpc_port),
        "DAPR_HTTP_PORT": str(endpoint.http_port),
        "DAPR_API_TOKEN": endpoint.api_token or "",
    }
    report, _ = _doctor(tmp_path / "client", env)
    assert report["sidecar"]["state_stores"] == [
        {"name": "statestore", "type": "state.sqlite/v1", "actor_state_store": None}
    ]
    assert report["sidecar"]["tracing"]["sidecar"].startswith("not reported by the Dapr metadata")
    assert report["warnings"] == []


def test_doctor_refuses_a_resources_path_that_is_not_a_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fte", "doctor", "--data-dir", str(tmp_path / "d"),
         "--resources-path", str(tmp_path / "missing")],
        cwd=PROJECT_ROOT, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"fte: error: --resources-path {tmp_path / 'missing'} is not a directory"
    ]
    assert not (tmp_path / "d" / "stack.json").exists()
