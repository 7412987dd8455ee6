"""`fte up --replicas/--state/--pubsub`: bad input is one line and exit 2 before anything
starts; the rendered Components name no secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fte.backends import render
from fte.errors import UsageError
from tests.support import PROJECT_ROOT


@pytest.mark.parametrize(
    "argv, env, message",
    [
        pytest.param(
            ["--replicas", "3"], {}, "--replicas needs a state store every replica shares",
            id="replicas-without-state",
        ),
        pytest.param(
            ["--replicas", "0", "--state", "redis://127.0.0.1:1"], {}, "--replicas must be 1-16",
            id="zero-replicas",
        ),
        pytest.param(
            ["--state", "mysql://u:p@db/fte"], {}, "--state must be a postgres:// or redis:// URL",
            id="unknown-scheme",
        ),
        pytest.param(
            [], {"FTE_STATE_URL": "redis:///0"}, "redis:// URL needs a host", id="env-no-host"
        ),
        pytest.param(
            ["--state", "redis://h:6379/x"], {}, "must be a number, got 'x'", id="redis-db"
        ),
        pytest.param(
            ["--pubsub", "postgres://db/fte"], {}, "--pubsub must be a redis:// URL",
            id="pubsub-not-redis",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], env: dict[str, str], message: str
) -> None:
    data_dir = tmp_path / "data"
    # Components from an earlier start must survive a mistyped URL.
    render(data_dir / "components", state_url=None, pubsub_url=None)
    before = sorted(p.name for p in (data_dir / "components").iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "fte", "up", *argv, "--data-dir", str(data_dir)],
        cwd=PROJECT_ROOT,
        env={**_environ(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("fte: error: ") and message in line, line
    assert "u:p" not in line  # no credentials echoed
    assert sorted(p.name for p in (data_dir / "components").iterdir()) == before
    assert not (data_dir / "stack.json").exists() and not (data_dir / "replicas.json").exists()


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DAPR_", "FTE_"))}


def test_rendered_components_hold_no_secret(tmp_path: Path) -> None:
    backends = render(
        tmp_path / "components",
        state_url="postgresql://fte:pg-PASSWORD-1@db:5432/fte?sslmode=require",
        pubsub_url="redis://:redis-PASSWORD-2@cache:6380/4",
    )
    text = "".join(p.read_text() for p in backends.components_dir.iterdir())
    assert "pg-PASSWORD-1" not in text and "redis-PASSWORD-2" not in text
    assert backends.daprd_env == {
        "FTE_SECRET_POSTGRES_DSN": "postgresql://fte:pg-PASSWORD-1@db:5432/fte?sslmode=require",
        "FTE_SECRET_REDIS_PUBSUB_PASSWORD": "redis-PASSWORD-2",
    }
    pubsub = yaml.safe_load((backends.components_dir / "pubsub.yaml").read_text())
    assert {m["name"]: m.get("value") for m in pubsub["spec"]["metadata"]} == {
        "redisHost": "cache:6380",
        "redisPassword": None,
        "redisDB": "4",
    }
    config = yaml.safe_load((backends.components_dir / "config.yaml").read_text())
    assert config["spec"]["secrets"] == {
        "scopes": [{"storeName": "envvars", "defaultAccess": "deny"}]
    }


def test_a_bad_url_raises_before_writing(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="postgres:// or redis://"):
        render(tmp_path / "components", state_url="sqlite:///x.db", pubsub_url=None)
    assert not (tmp_path / "components").exists()
