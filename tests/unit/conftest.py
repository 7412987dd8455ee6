"""Unit tests run offline and strictly: unmocked HTTP fails, scripted HTTP must be used up."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Protocol

import httpx
import pytest
import respx
from pydantic import SecretStr

from fte.llm import LLMClient, LLMConfig
from tests.unit.fake_openai import OPENAI_CHAT_URL, Script, Step

# Looks like a real key so a leak would be obvious in any output.
API_KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


class ScriptFactory(Protocol):
    def __call__(self, steps: Sequence[Step], url: str = OPENAI_CHAT_URL) -> respx.Route: ...


@pytest.fixture(autouse=True)
def http_mock() -> Iterator[respx.MockRouter]:
    """Every httpx request must match a route, and every route must be used."""
    with respx.mock(assert_all_mocked=True, assert_all_called=True) as router:
        yield router


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse network connections that bypass respx.

    respx patches httpx's transport only; the openai SDK's default client is httpx2, which
    respx never sees, so an LLMClient built without an injected httpx.Client would otherwise
    go out to the network.
    """

    def refuse(self: socket.socket, address: object) -> None:
        self.close()  # the caller does not expect this error and would leak the socket
        raise RuntimeError(f"unit tests must not open network connections (to {address!r})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture
def script_openai(http_mock: respx.MockRouter) -> Iterator[ScriptFactory]:
    """Script the responses of the chat-completions endpoint; returns the respx route."""
    scripts: list[Script] = []

    def add(steps: Sequence[Step], url: str = OPENAI_CHAT_URL) -> respx.Route:
        script = Script(steps)
        scripts.append(script)
        return http_mock.post(url).mock(side_effect=script)

    yield add
    problems = [problem for script in scripts for problem in script.problems()]
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def sleeps() -> list[float]:
    """What the client asked to sleep for, instead of sleeping."""
    return []


@pytest.fixture
def llm(sleeps: list[float]) -> Iterator[LLMClient]:
    config = LLMConfig(api_key=SecretStr(API_KEY))
    with (
        httpx.Client() as http_client,
        LLMClient(config, http_client=http_client, sleep=sleeps.append) as client,
    ):
        yield client
