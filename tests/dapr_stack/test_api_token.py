"""The embedded sidecar serves only clients that present its data directory's API token.

Loopback keeps the network out (test_loopback.py); the token keeps the machine's other
users out: without it daprd refuses every gRPC and HTTP API call except its health checks.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from dapr.proto import api_service_v1, api_v1

from fte.api_tokens import REQUIRE_SETTING, TOKENS_FILE, read_tokens
from fte.dapr_build import find_binaries
from fte.dapr_clients import workflow_client
from fte.dapr_stack import STACK_RECORD, EmbeddedStack
from tests.support import PROJECT_ROOT

pytestmark = pytest.mark.engine


def _http_status(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _grpc_metadata_call(port: int, token: str | None) -> grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = api_service_v1.DaprStub(channel)
        metadata = (("dapr-api-token", token),) if token is not None else None
        try:
            stub.GetMetadata(api_v1.GetMetadataRequest(), metadata=metadata, timeout=5)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


@pytest.fixture
def token_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default: nothing in the environment asks for the token, and it is required."""
    monkeypatch.delenv(REQUIRE_SETTING, raising=False)


def test_sidecar_refuses_clients_without_the_data_directorys_token(
    token_required: None, private_stack: EmbeddedStack
) -> None:
    endpoint = private_stack.endpoint
    assert endpoint is not None and endpoint.grpc_port and endpoint.http_port
    token_file = private_stack.data_dir / TOKENS_FILE
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600, "only the owner may read it"
    token = read_tokens(private_stack.data_dir).dapr
    assert endpoint.api_token == token and len(token) >= 32

    # gRPC API: refused without the token or with another, served with it.
    assert _grpc_metadata_call(endpoint.grpc_port, None) == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_metadata_call(endpoint.grpc_port, "guess") == grpc.StatusCode.UNAUTHENTICATED
    assert _grpc_metadata_call(endpoint.grpc_port, token) == grpc.StatusCode.OK

    # HTTP API likewise; only the health checks answer everybody.
    base = f"http://127.0.0.1:{endpoint.http_port}/v1.0"
    assert _http_status(f"{base}/metadata", {}) == 401
    assert _http_status(f"{base}/state/statestore/k", {}) == 401
    assert _http_status(f"{base}/metadata", {"dapr-api-token": token}) == 200
    assert _http_status(f"{base}/healthz", {}) == 204

    # Our own clients present it: an unknown workflow is "not there", not "unauthenticated".
    client = workflow_client(endpoint)
    try:
        assert client.get_workflow_state("no-such-run") is None
    finally:
        client.close()


def test_a_user_exported_token_does_not_replace_the_directorys_own(
    token_required: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAPR_API_TOKEN", "exported-for-some-other-sidecar")
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()):
        tokens = read_tokens(data_dir)
        daprd = json.loads((data_dir / STACK_RECORD).read_text())["pids"]["daprd"]
        raw = Path(f"/proc/{daprd}/environ").read_bytes().split(b"\0")
        environ = dict(e.decode().partition("=")[::2] for e in raw if e)
        assert environ["DAPR_API_TOKEN"] == tokens.dapr
        assert environ["APP_API_TOKEN"] == tokens.app
        assert tokens.dapr != tokens.app

        # Another command on the same data directory reads the token from the directory
        # (the exported one would be refused).
        listed = subprocess.run(
            [sys.executable, "-m", "fte", "list", "--data-dir", str(data_dir)],
            cwd=PROJECT_ROOT,
            env={**os.environ, "DAPR_API_TOKEN": "exported-for-some-other-sidecar"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert listed.returncode == 0, listed.stderr
    # The token is kept for the next start, so clients of a restarted stack still match.
    assert read_tokens(data_dir) == tokens


def test_turned_off_the_stack_wants_no_token_and_drops_a_stale_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The escape hatch (FTE_SIDECAR_API_TOKEN=0): a stack started with it serves clients
    # that present no token, and a token file from an earlier start that required one is
    # removed, so no client presents a token daprd does not expect.
    monkeypatch.setenv(REQUIRE_SETTING, "0")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / TOKENS_FILE).write_text('{"dapr": "stale", "app": "stale"}')
    with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()) as endpoint:
        assert endpoint.grpc_port
        assert not (data_dir / TOKENS_FILE).exists()
        assert endpoint.api_token is None
        assert _grpc_metadata_call(endpoint.grpc_port, None) == grpc.StatusCode.OK
