"""The worker-side choice of model: always the run's own, or a retryable refusal."""

from __future__ import annotations

import pytest

from fte.agents import offline_model
from fte.contracts import ModelEndpoint
from fte.errors import ModelUnavailableError
from fte.llm import FunctionModel, ModelRouter, without_credentials

SERVER = FunctionModel(lambda request: request.inputs, name="server")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("http://h:8000/v1", "http://h:8000/v1", id="plain"),
        pytest.param("http://user:sk-SECRET@h:8000/v1", "http://h:8000/v1", id="userinfo"),
        pytest.param("https://sk-SECRET@api.example/v1", "https://api.example/v1", id="user-only"),
    ],
)
def test_without_credentials(url: str | None, expected: str | None) -> None:
    assert without_credentials(url) == expected


def test_offline_runs_get_the_offline_model_even_on_a_worker_with_a_server() -> None:
    offline = offline_model()
    router = ModelRouter(offline=offline, server=SERVER, server_url=None)
    assert router.for_endpoint(ModelEndpoint(offline=True), agent="a", model="m") is offline
    assert router.for_endpoint(ModelEndpoint(), agent="a", model="m") is SERVER


def test_server_is_matched_without_its_credentials() -> None:
    router = ModelRouter(
        offline=offline_model(), server=SERVER, server_url="http://u:KEY@local:11434/v1"
    )
    endpoint = ModelEndpoint(base_url="http://local:11434/v1")
    assert router.for_endpoint(endpoint, agent="a", model="m") is SERVER


@pytest.mark.parametrize(
    ("server", "endpoint", "says"),
    [
        pytest.param(None, ModelEndpoint(), "no model server configured", id="offline-worker"),
        pytest.param(
            SERVER,
            ModelEndpoint(base_url="http://other:1/v1"),
            "only OpenAI-compatible server https://api.openai.com/v1",
            id="other-server",
        ),
    ],
)
def test_a_run_this_worker_cannot_serve_is_refused_retryably(
    server: FunctionModel | None, endpoint: ModelEndpoint, says: str
) -> None:
    router = ModelRouter(offline=offline_model(), server=server, server_url=None)
    with pytest.raises(ModelUnavailableError, match=says) as caught:
        router.for_endpoint(endpoint, agent="planner", model="gpt-x")
    assert caught.value.retryable
