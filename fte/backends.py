"""Production state stores and pub/sub for the launcher: Component files from a URL.

`fte up --state postgres://... [--pubsub redis://...]` runs the same Dapr processes as the
embedded default, with PostgreSQL or Redis as the actor state store (workflow history and
artifacts) instead of SQLite. The Component files are written into the data directory and
name no secret: a password or a whole DSN goes to daprd's environment only, as
`FTE_SECRET_<NAME>`, and the components read it through the prefixed `local.env` secret
store, as the shipped `components/postgres/` and `components/redis/` do.
"""

from __future__ import annotations

import shutil
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fte import package_path
from fte.errors import UsageError

SECRET_PREFIX = "FTE_SECRET_"
SECRET_STORE = "envvars"
_POSTGRES_SCHEMES = ("postgres", "postgresql")
_REDIS_SCHEMES = ("redis", "rediss")


@dataclass(frozen=True)
class Backends:
    """A rendered set of components and what daprd needs in its environment to use them."""

    components_dir: Path
    state_kind: str
    """`postgresql`, `redis` or `sqlite`."""
    pubsub_kind: str
    """`redis` or `in-memory`."""
    daprd_env: dict[str, str] = field(repr=False)
    """FTE_SECRET_* values for daprd's environment only."""


def _secret(name: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": name}}


def _component(name: str, kind: str, version: str, metadata: list[dict[str, Any]]) -> str:
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": kind, "version": version, "metadata": metadata},
    }
    if any("secretKeyRef" in item for item in metadata):
        document["auth"] = {"secretStore": SECRET_STORE}
    return yaml.safe_dump(document, sort_keys=False)


def _redis_metadata(url: urllib.parse.SplitResult, secret: str) -> tuple[list[dict[str, Any]], str]:
    if not url.hostname:
        raise UsageError(f"{url.scheme}:// URL needs a host, e.g. redis://:PASSWORD@HOST:6379/0")
    metadata: list[dict[str, Any]] = [
        {"name": "redisHost", "value": f"{url.hostname}:{url.port or 6379}"}
    ]
    password = urllib.parse.unquote(url.password or "")
    if url.username:
        metadata.append({"name": "redisUsername", "value": urllib.parse.unquote(url.username)})
    if password:
        metadata.append({"name": "redisPassword", **_secret(secret)})
    database = url.path.strip("/")
    if database:
        if not database.isdigit():
            raise UsageError(
                f"the Redis database in {url.scheme}:// must be a number, got {database!r}"
            )
        metadata.append({"name": "redisDB", "value": database})
    if url.scheme == "rediss":
        metadata.append({"name": "enableTLS", "value": "true"})
    return metadata, password


def render(
    target: Path,
    *,
    state_url: str | None,
    pubsub_url: str | None,
    tracing_endpoint: str | None = None,
    state_retention: bool = True,
) -> Backends:
    """Write the components for these URLs into `target` (replacing what was there).

    Everything is worked out before anything is written: a bad URL leaves the previous
    components as they were.
    """
    files: dict[str, str] = {}
    env: dict[str, str] = {}
    local = package_path("components", "local")
    needs_secrets = False

    state_kind = "sqlite"
    if state_url is None:
        files["statestore.yaml"] = (local / "statestore.yaml").read_text()
    else:
        url = urllib.parse.urlsplit(state_url)
        if url.scheme in _POSTGRES_SCHEMES:
            state_kind = "postgresql"
            env[f"{SECRET_PREFIX}POSTGRES_DSN"] = state_url
            needs_secrets = True
            text = _component(
                "statestore",
                "state.postgresql",
                "v2",
                [
                    {"name": "connectionString", **_secret("POSTGRES_DSN")},
                    {"name": "actorStateStore", "value": "true"},
                ],
            )
        elif url.scheme in _REDIS_SCHEMES:
            state_kind = "redis"
            metadata, password = _redis_metadata(url, "REDIS_STATE_PASSWORD")
            if password:
                env[f"{SECRET_PREFIX}REDIS_STATE_PASSWORD"] = password
                needs_secrets = True
            text = _component(
                "statestore",
                "state.redis",
                "v1",
                [*metadata, {"name": "actorStateStore", "value": "true"}],
            )
        else:
            raise UsageError(
                f"--state must be a postgres:// or redis:// URL, got a {url.scheme or 'plain'} one"
            )
        files["statestore.yaml"] = text

    pubsub_kind = "in-memory"
    if pubsub_url is None:
        files["pubsub.yaml"] = (local / "pubsub.yaml").read_text()
    else:
        url = urllib.parse.urlsplit(pubsub_url)
        if url.scheme not in _REDIS_SCHEMES:
            raise UsageError(f"--pubsub must be a redis:// URL, got a {url.scheme or 'plain'} one")
        pubsub_kind = "redis"
        metadata, password = _redis_metadata(url, "REDIS_PUBSUB_PASSWORD")
        if password:
            env[f"{SECRET_PREFIX}REDIS_PUBSUB_PASSWORD"] = password
            needs_secrets = True
        files["pubsub.yaml"] = _component("pubsub", "pubsub.redis", "v1", metadata)

    if needs_secrets:
        files["secretstore.yaml"] = (
            _component(SECRET_STORE, "secretstores.local.env", "v1", [
                {"name": "prefix", "value": SECRET_PREFIX}
            ])
        )  # fmt: skip
    config = yaml.safe_load((local / "config.yaml").read_text())
    if needs_secrets:
        # As in production-config.yaml: components resolve their secretKeyRefs, the app
        # reads no secret through the sidecar's secrets API.
        config["spec"]["secrets"] = {
            "scopes": [{"storeName": SECRET_STORE, "defaultAccess": "deny"}]
        }
    if not state_retention:
        # daprd 1.18.2 can crash (nil pointer in the orchestrator's handleRetention, which
        # reads its cached state after a failover reset it) when a workflow completes on a
        # sidecar that took it over from a dead one; without a retention policy that code
        # returns early. Finished runs are then removed with `fte purge --older-than`.
        config["spec"]["workflow"].pop("stateRetentionPolicy", None)
    if tracing_endpoint is not None:
        # OTLP/gRPC like the worker's exporter: the same collector gets the sidecar's
        # workflow spans and the worker's LLM spans, in the same traces.
        otlp = urllib.parse.urlsplit(
            tracing_endpoint if "://" in tracing_endpoint else f"http://{tracing_endpoint}"
        )
        if not otlp.hostname:
            raise UsageError(f"the OTLP endpoint {tracing_endpoint!r} names no host")
        config["spec"]["tracing"] = {
            "samplingRate": "1",
            "otel": {
                "endpointAddress": f"{otlp.hostname}:{otlp.port or 4317}",
                "isSecure": otlp.scheme == "https",
                "protocol": "grpc",
            },
        }
    files["config.yaml"] = yaml.safe_dump(config, sort_keys=False)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name, text in files.items():
        (target / name).write_text(text)
    return Backends(target, state_kind, pubsub_kind, env)
