"""Cassettes: a run's model exchanges recorded once, replayed byte for byte.

A cassette holds every HTTP exchange one research run had with its model server, in order:
the request's method, path (relative to the base URL) and exact body, and the response's
status, content type and exact body. Nothing else is kept: no request headers (so no
`Authorization`), no response headers, and any configured secret found in a body is
replaced by `***` before it is written.

Replay matches a request by method, path and body, byte for byte. The only rewrite is the
corpus directory: prompts quote each source's file path, so the corpus root is stored as
`{corpus}` and put back on replay, and a cassette recorded in one checkout replays in
another. A request that is not in the cassette gets a 400 (a permanent error, so the run
fails at once instead of retrying) and is listed in `misses`; the suite then fails loudly,
naming the agent and where the request differs from the recorded one. It never falls
through to a network.

The format does not care who answered: a cassette recorded from the offline model served
over HTTP (`fte eval --record` with no model configured) and one recorded from a real
endpoint replay the same way.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import httpx
from pydantic import Field

from fte.contracts import Contract
from fte.evals.transports import error_response, request_label
from fte.logs import REDACTED

FORMAT: Literal["fte-cassette/1"] = "fte-cassette/1"
CORPUS_PLACEHOLDER = "{corpus}"


class RecordedRequest(Contract):
    method: str
    path: str = Field(description="Path after the base URL, e.g. /chat/completions.")
    agent: str = Field(description="The agent it was for (not matched; for people).")
    body: str = Field(description="The exact body, with the corpus root as {corpus}.")


class RecordedResponse(Contract):
    status: int
    content_type: str
    body: str


class Interaction(Contract):
    request: RecordedRequest
    response: RecordedResponse


class Cassette(Contract):
    format: Literal["fte-cassette/1"] = FORMAT
    case: str
    recorded_with: str = Field(description="The model server that answered, without secrets.")
    models: dict[str, str] = Field(description="The model name each role asked for.")
    interactions: list[Interaction] = Field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        data = path.read_bytes()
        return cls.model_validate_json(gzip.decompress(data) if path.suffix == ".gz" else data)

    def save(self, path: Path) -> None:
        """JSON, gzipped when the name ends in .gz (`zcat` shows it); same exchanges, same bytes."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # Concurrent requests (the source finders) arrive in any order; stored sorted, and
        # stably, so exchanges with the same request keep their recorded order.
        ordered = sorted(self.interactions, key=lambda i: (i.request.agent, i.request.body))
        document = self.model_copy(update={"interactions": ordered}).model_dump(mode="json")
        text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
        data = text.encode("utf-8")
        if path.suffix == ".gz":
            data = gzip.compress(data, compresslevel=9, mtime=0)
        path.write_bytes(data)


def _relative_path(request: httpx.Request, base_url: str) -> str:
    base = httpx.URL(base_url).path.rstrip("/")
    path = request.url.path
    return path[len(base) :] if base and path.startswith(base) else path


class _Corpus:
    """Swaps the corpus root for its placeholder in stored text, and back."""

    def __init__(self, root: Path) -> None:
        self.root = str(root)

    def store(self, text: str) -> str:
        return text.replace(self.root, CORPUS_PLACEHOLDER)

    def restore(self, text: str) -> str:
        return text.replace(CORPUS_PLACEHOLDER, self.root)


class Recorder(httpx.BaseTransport):
    """Passes requests to `inner` and records each exchange for a cassette."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        base_url: str,
        corpus_root: Path,
        secrets: Iterable[str] = (),
    ) -> None:
        self._inner = inner
        self._base_url = base_url
        self._corpus = _Corpus(corpus_root)
        self._secrets = [s for s in secrets if s]
        self.interactions: list[Interaction] = []
        self._lock = threading.Lock()

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        content = response.read()
        recorded = Interaction(
            request=RecordedRequest(
                method=request.method,
                path=_relative_path(request, self._base_url),
                agent=request_label(request),
                body=self._scrub(self._corpus.store(request.content.decode("utf-8"))),
            ),
            response=RecordedResponse(
                status=response.status_code,
                content_type=response.headers.get("content-type", "application/json"),
                body=self._scrub(self._corpus.store(content.decode("utf-8"))),
            ),
        )
        with self._lock:
            self.interactions.append(recorded)
        return httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )


class Player(httpx.BaseTransport):
    """Answers from a cassette; a request it does not hold is a miss, never a network call.

    Several recorded exchanges with the same request (an HTTP retry while recording) are
    replayed in their recorded order; a request repeated beyond them gets the last answer
    again (an activity the engine runs twice asks twice).
    """

    def __init__(self, cassette: Cassette, *, base_url: str, corpus_root: Path) -> None:
        self.cassette = cassette
        self._base_url = base_url
        self._corpus = _Corpus(corpus_root)
        self._answers: dict[tuple[str, str, str], deque[int]] = {}
        for index, interaction in enumerate(cassette.interactions):
            r = interaction.request
            self._answers.setdefault((r.method, r.path, r.body), deque()).append(index)
        self._served: set[int] = set()
        self.misses: list[str] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = _relative_path(request, self._base_url)
        body = self._corpus.store(request.content.decode("utf-8"))
        with self._lock:
            queue = self._answers.get((request.method, path, body))
            if not queue:
                self.misses.append(self._describe_miss(request, path, body))
                return error_response(
                    400,
                    f"fte eval: request not in cassette {self.cassette.case!r}",
                    type="cassette_miss",
                )
            index = queue.popleft() if len(queue) > 1 else queue[0]
            self._served.add(index)
        recorded = self.cassette.interactions[index].response
        return httpx.Response(
            recorded.status,
            headers={"content-type": recorded.content_type},
            content=self._corpus.restore(recorded.body).encode("utf-8"),
            request=request,
        )

    def unused(self) -> list[Interaction]:
        """Recorded exchanges the replay never asked for."""
        return [i for n, i in enumerate(self.cassette.interactions) if n not in self._served]

    def _describe_miss(self, request: httpx.Request, path: str, body: str) -> str:
        agent = request_label(request)
        same_agent = [
            i.request
            for i in self.cassette.interactions
            if i.request.agent == agent and i.request.path == path
        ]
        if not same_agent:
            return f"{agent}: {request.method} {path} was never recorded for this agent"
        nearest = max(same_agent, key=lambda r: _common_prefix(r.body, body))
        at = _common_prefix(nearest.body, body)
        return (
            f"{agent}: request differs from the {len(same_agent)} recorded for this agent; "
            f"the nearest differs at character {at}: recorded "
            f"{nearest.body[max(0, at - 40) : at + 40]!r}, now {body[max(0, at - 40) : at + 40]!r}"
        )


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
