"""The model interface, and its two implementations: an OpenAI-compatible server, or a function.

Agents ask a `Model` a `ModelRequest` (rendered prompt, output schema, typed inputs) and get
back a validated `LLMResult`. `LLMClient` sends the prompt over HTTP with the `openai` SDK;
`FunctionModel` answers with a Python function of the request (the offline model, test
doubles), the way pydantic-ai's FunctionModel plugs in: same request, same validation.


Retries have exactly one owner per layer. The SDK's own retries are off (`max_retries=0`);
tenacity retries only HTTP-level transient failures inside one call, a small bounded budget;
everything longer-lived belongs to the workflow's RetryPolicy, so each activity attempt is
visible in workflow history. Permanent failures surface after a single HTTP attempt.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, cast

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception

from fte import http_limits
from fte.contracts import ModelEndpoint, TokenUsage
from fte.errors import (
    FteError,
    LLMAuthError,
    LLMConfigError,
    LLMDeadlineError,
    LLMOutputError,
    LLMPermanentError,
    LLMQuotaError,
    LLMRequestError,
    LLMResponseTooLargeError,
    LLMTransientError,
    ModelUnavailableError,
)
from fte.lazy import lazy_import

# Re-exported: LLMConfig is the client's configuration, and callers import it from here.
from fte.llm_config import LLMConfig as LLMConfig
from fte.llm_config import setting_name, url_credentials

if TYPE_CHECKING:
    import ssl

    import httpx2
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
    from openai.types.shared_params import ResponseFormatJSONSchema
else:
    # The openai package takes longer to import than the rest of the CLI together, and
    # settings, prompts and the offline model need none of it: loaded on first use
    # (LLMClient's constructor, before any activity thread can race to it).
    openai = lazy_import("openai")

T = TypeVar("T", bound=BaseModel)

log = structlog.get_logger(__name__)

# Local OpenAI-compatible servers (Ollama, llama.cpp, vLLM) ignore the key, but the SDK
# refuses to build a client without one.
_PLACEHOLDER_API_KEY = "not-needed"
_MAX_SERVER_MESSAGE_CHARS = 200
_MAX_REPORTED_VALIDATION_ERRORS = 10


class LLMResult(BaseModel, Generic[T]):
    """A validated model output plus what it cost to get it."""

    model_config = ConfigDict(frozen=True)

    output: T
    usage: TokenUsage
    model: str
    http_attempts: int


@dataclass(frozen=True)
class ModelRequest(Generic[T]):
    """One structured-output question: the rendered prompt, plus the inputs it was made from."""

    agent: str
    model: str
    system: str
    user: str
    output_model: type[T]
    inputs: BaseModel


class Model(Protocol):
    """Anything that answers a `ModelRequest` with a validated output."""

    def complete(self, request: ModelRequest[T]) -> LLMResult[T]: ...

    def close(self) -> None: ...


class FunctionModel:
    """A model that is a Python function of the request: no HTTP, same validation.

    The function's answer is validated against the requested schema exactly as a
    server's JSON would be, and tokens are estimated from the text sizes so cost and
    progress reporting work the same way.
    """

    def __init__(self, function: Callable[[ModelRequest[Any]], BaseModel], *, name: str) -> None:
        self._function = function
        self.name = name

    def complete(self, request: ModelRequest[T]) -> LLMResult[T]:
        try:
            answer = self._function(request)
        except FteError:
            raise
        except Exception as exc:
            # Same request, same failure: a bug to fix, not a hiccup to retry.
            raise LLMRequestError(
                f"{request.agent}: model '{self.name}' failed ({type(exc).__name__}: {exc})",
                agent=request.agent,
                model=self.name,
                status_code=None,
                attempts=1,
            ) from exc
        content = answer.model_dump_json()
        try:
            output = request.output_model.model_validate_json(content)
        except ValidationError as error:
            raise LLMOutputError(
                f"{request.agent}: model '{self.name}' answered outside the "
                f"{request.output_model.__name__} schema ({_summarise(error)})",
                agent=request.agent,
                model=self.name,
                status_code=None,
                attempts=1,
            ) from error
        usage = TokenUsage(
            prompt_tokens=estimate_tokens(request.system) + estimate_tokens(request.user),
            completion_tokens=estimate_tokens(content),
            calls=1,
        )
        log.info(
            "llm.call",
            agent=request.agent,
            model=self.name,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        return LLMResult(output=output, usage=usage, model=self.name, http_attempts=0)

    def close(self) -> None:
        pass


def without_credentials(url: str | None) -> str | None:
    """`url` with any `user:password@` removed: what may be stored, shown or compared."""
    if url is None:
        return None
    parsed = httpx.URL(url)
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


class ModelRouter:
    """The models one worker can serve, chosen per run by the run's own `ModelEndpoint`.

    The offline model is always available; a server only with this worker's configuration
    for it. A run whose server this worker has no credentials for gets a retryable
    `ModelUnavailableError`, never another model's answer.
    """

    def __init__(self, *, offline: Model, server: Model | None, server_url: str | None) -> None:
        self._offline = offline
        self._server = server
        self._server_url = without_credentials(server_url)

    def for_endpoint(self, endpoint: ModelEndpoint, *, agent: str, model: str) -> Model:
        if endpoint.offline:
            return self._offline
        if self._server is not None and endpoint.base_url == self._server_url:
            return self._server
        wanted = endpoint.describe()
        has = (
            f"only {ModelEndpoint(base_url=self._server_url).describe()}"
            if self._server is not None
            else "no model server configured"
        )
        raise ModelUnavailableError(
            f"{agent}: this worker cannot serve the run's model ({wanted}; it has {has}); "
            "start `fte worker` with that run's OPENAI_BASE_URL and OPENAI_API_KEY",
            agent=agent,
            model=model,
            status_code=None,
            attempts=0,
        )

    def close(self) -> None:
        self._offline.close()
        if self._server is not None:
            self._server.close()


def estimate_tokens(text: str) -> int:
    """English averages about four tokens per three words; close enough for cost reports."""
    return math.ceil(len(text.split()) * 4 / 3)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process, as httpx would build it: building one reads the whole CA
    bundle (~25 ms), which every LLMClient would otherwise pay again."""
    return httpx.create_ssl_context()


def prepare_client_library() -> None:
    """Do now what the first LLMClient and its first request would do on a run's critical
    path: import openai (~0.35 s), its chat resource (imported on the first request,
    ~0.03 s) and the TLS context. `fte research` calls it while the sidecar starts."""
    import openai.resources.chat  # noqa: F401 - imported for its side effect

    _tls_context()


@functools.cache
def _json_schema(output_model: type[BaseModel]) -> dict[str, Any]:
    """An output model's JSON schema, built once per model: pydantic builds it afresh on
    every call (1.5 ms), and every model request sends it."""
    return output_model.model_json_schema()


class LLMClient:
    """An OpenAI-compatible server: structured output, bounded HTTP retries, one repair call."""

    def __init__(
        self,
        config: LLMConfig,
        *,
        http_client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._sleep = sleep
        # An injected client may be shared (a test router, an in-process model): its owner
        # closes it, not us.
        self._owns_http_client = http_client is None
        if http_client is None:
            # No keep-alive: every request opens its own connection, so the deadline
            # watchdog always knows the socket to cut (`fte.http_limits`). A connection
            # costs milliseconds; a model call takes seconds.
            http_client = httpx.Client(
                timeout=config.timeout_s,
                limits=httpx.Limits(max_keepalive_connections=0),
                verify=_tls_context(),
            )
        http_limits.install(http_client)
        # Shared by every activity thread of this worker: at most this many requests on
        # the wire, whatever the fan-out (`max_concurrent_requests`).
        self._slots = threading.BoundedSemaphore(config.max_concurrent_requests)
        self._api_key = config.api_key.get_secret_value() if config.api_key else None
        # What a server may echo back and our messages must not repeat.
        self._secrets = [s for s in (self._api_key, *url_credentials(config.base_url)) if s]
        if self._api_key is None and config.base_url is None:
            raise LLMConfigError(
                "OPENAI_API_KEY is not set: export it, or point OPENAI_BASE_URL at a local "
                "OpenAI-compatible server."
            )
        self._openai = openai.OpenAI(
            api_key=self._api_key or _PLACEHOLDER_API_KEY,
            base_url=config.base_url,
            timeout=config.timeout_s,
            max_retries=0,
            # openai 3.x is typed for httpx2 but accepts a classic httpx.Client at runtime;
            # keeping httpx here is what lets respx, in-process transports and the
            # exchange limits plug in.
            http_client=cast("httpx2.Client", http_client),
        )

    def close(self) -> None:
        if self._owns_http_client:
            self._openai.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def complete(self, request: ModelRequest[T]) -> LLMResult[T]:
        return self.structured(
            agent=request.agent,
            model=request.model,
            system=request.system,
            user=request.user,
            output_model=request.output_model,
        )

    def structured(
        self,
        *,
        agent: str,
        model: str,
        system: str,
        user: str,
        output_model: type[T],
    ) -> LLMResult[T]:
        """Ask `model` for JSON matching `output_model`, repairing invalid output once."""
        response_format: ResponseFormatJSONSchema = {
            "type": "json_schema",
            "json_schema": {
                "name": output_model.__name__,
                "schema": _json_schema(output_model),
                # Non-strict: strict mode rejects common pydantic schemas (defaults, minItems)
                # and many local servers do not implement it; pydantic validates instead.
                "strict": False,
            },
        }
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        # One call is one activity attempt; the repair call shares its deadline.
        ends_at = time.monotonic() + self._config.attempt_deadline_s
        completion, attempts = self._complete(
            agent, model, messages, response_format, 0, ends_at=ends_at
        )
        usage = _usage(completion)
        content = _content(completion)
        try:
            output = output_model.model_validate_json(content)
        except ValidationError as first_error:
            log.warning(
                "llm.repair", agent=agent, model=model, validation_errors=first_error.error_count()
            )
            messages += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": _repair_request(output_model, first_error)},
            ]
            completion, attempts = self._complete(
                agent, model, messages, response_format, attempts, ends_at=ends_at
            )
            usage += _usage(completion)
            try:
                output = output_model.model_validate_json(_content(completion))
            except ValidationError as second_error:
                raise LLMOutputError(
                    f"{agent}: model '{model}' returned output that does not match "
                    f"{output_model.__name__} even after one repair call "
                    f"({_summarise(second_error)}); use a model that supports JSON-schema output.",
                    agent=agent,
                    model=model,
                    status_code=200,
                    attempts=attempts,
                ) from second_error
        log.info(
            "llm.call",
            agent=agent,
            model=model,
            http_attempts=attempts,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
        )
        return LLMResult(output=output, usage=usage, model=model, http_attempts=attempts)

    def _complete(
        self,
        agent: str,
        model: str,
        messages: list[ChatCompletionMessageParam],
        response_format: ResponseFormatJSONSchema,
        prior_attempts: int,
        *,
        ends_at: float,
    ) -> tuple[ChatCompletion, int]:
        """One chat completion; returns it with the running count of HTTP attempts.

        Each HTTP request gets the request deadline or what is left of the attempt's,
        whichever is sooner. A wait between requests that would pass the attempt deadline,
        or a Retry-After beyond `max_retry_after_s`, ends the attempt instead of sleeping.
        """
        config = self._config
        attempts = prior_attempts
        gave_up: str | None = None  # why the retries stopped before the attempts ran out
        deadline_hit = ""

        def send() -> ChatCompletion:
            nonlocal attempts, deadline_hit
            attempts += 1
            if not self._slots.acquire(timeout=max(ends_at - time.monotonic(), 0.0)):
                deadline_hit = "attempt_deadline_s"
                raise http_limits.DeadlineExceeded(config.attempt_deadline_s)
            try:
                return send_in_slot()
            finally:
                self._slots.release()

        def send_in_slot() -> ChatCompletion:
            nonlocal deadline_hit
            left = ends_at - time.monotonic()
            if config.request_deadline_s <= left:
                seconds, deadline_hit = config.request_deadline_s, "request_deadline_s"
            else:
                seconds, deadline_hit = max(left, 0.0), "attempt_deadline_s"
            with http_limits.exchange(seconds, config.max_response_bytes) as limits:
                try:
                    limits.check()
                    return self._openai.chat.completions.create(
                        model=model, messages=messages, response_format=response_format
                    )
                except openai.APIConnectionError as exc:
                    # The watchdog cut the connection: that is the deadline, not the network.
                    if limits.expired:
                        raise http_limits.DeadlineExceeded(seconds) from exc
                    raise

        def stop(state: RetryCallState) -> bool:
            nonlocal gave_up
            if state.attempt_number >= config.max_http_attempts:
                return True
            wait = state.upcoming_sleep
            if wait > config.max_retry_after_s:
                gave_up = (
                    f"the server asked to wait {wait:g} s before retrying, more than the "
                    f"{config.max_retry_after_s:g} s an attempt waits "
                    f"({setting_name('max_retry_after_s')})"
                )
            elif time.monotonic() + wait >= ends_at:
                gave_up = (
                    f"waiting {wait:g} s more would pass the attempt deadline "
                    f"({config.attempt_deadline_s:g} s, {setting_name('attempt_deadline_s')})"
                )
            return gave_up is not None

        def log_retry(state: RetryCallState) -> None:
            log.warning(
                "llm.retry",
                agent=agent,
                model=model,
                http_attempts=attempts,
                reason=_describe(_exception(state)),
                wait_s=state.upcoming_sleep,
            )

        retrying = Retrying(
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception(_is_retried),
            sleep=self._sleep,
            before_sleep=log_retry,
            reraise=True,
        )
        try:
            return retrying(send), attempts
        except http_limits.ResponseTooLarge as exc:
            raise LLMResponseTooLargeError(
                f"{agent}: the model server's answer for '{model}' is larger than "
                f"{exc.limit:,} bytes ({setting_name('max_response_bytes')}); refused without "
                "retrying, since the same request would get the same answer",
                agent=agent,
                model=model,
                status_code=None,
                attempts=attempts,
            ) from exc
        except http_limits.DeadlineExceeded as exc:
            raise LLMDeadlineError(
                f"{agent}: no complete answer from the model server for '{model}' within "
                f"{getattr(config, deadline_hit):g} s ({setting_name(deadline_hit)}) after "
                f"{attempts} HTTP "
                "attempts; the server stalled or trickled its answer, the workflow will retry",
                agent=agent,
                model=model,
                status_code=None,
                attempts=attempts,
            ) from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc, agent, model, attempts, gave_up) from exc
        except openai.APIConnectionError as exc:
            raise LLMTransientError(
                f"{agent}: could not reach the model server for '{model}' after {attempts} HTTP "
                f"attempts ({_describe(exc)}"
                + (f"; {gave_up}" if gave_up else "")
                + "); check OPENAI_BASE_URL and the network.",
                agent=agent,
                model=model,
                status_code=None,
                attempts=attempts,
            ) from exc

    def _wait(self, state: RetryCallState) -> float:
        """The server's Retry-After when it gives one (`stop` refuses one that is too long),
        else exponential backoff capped at `max_retry_after_s`."""
        exc = _exception(state)
        if isinstance(exc, openai.APIStatusError):
            retry_after = _retry_after_s(exc.response.headers.get("retry-after"))
            if retry_after is not None:
                return retry_after
        backoff = self._config.backoff_base_s * 2.0 ** (state.attempt_number - 1)
        return min(backoff, self._config.max_retry_after_s)

    def _status_error(
        self,
        exc: openai.APIStatusError,
        agent: str,
        model: str,
        attempts: int,
        gave_up: str | None = None,
    ) -> LLMTransientError | LLMPermanentError:
        status = exc.status_code
        detail = f"HTTP {status}: {self._server_message(exc)}"
        error_class: type[LLMTransientError | LLMPermanentError]
        if _is_transient(exc) and gave_up:
            error_class = LLMTransientError
            message = (
                f"{agent}: model server failing for '{model}' ({detail}) and {gave_up}; "
                f"the attempt ends after {attempts} HTTP attempts, the workflow retries it later."
            )
        elif _is_transient(exc):
            error_class = LLMTransientError
            message = (
                f"{agent}: model server still failing for '{model}' after {attempts} HTTP "
                f"attempts ({detail}); the workflow will retry, or try again later."
            )
        elif _is_quota_exhausted(exc):
            error_class = LLMQuotaError
            message = (
                f"{agent}: the account behind OPENAI_API_KEY is out of quota ({detail}); "
                "add credit or use another key."
            )
        elif status in (401, 403):
            error_class = LLMAuthError
            message = (
                f"{agent}: the model server refused the credentials for '{model}' ({detail}); "
                "check OPENAI_API_KEY and OPENAI_BASE_URL."
            )
        else:
            error_class = LLMRequestError
            message = (
                f"{agent}: the model server rejected the request for '{model}' ({detail}); "
                "check the model name and that the server supports JSON-schema output."
            )
        return error_class(message, agent=agent, model=model, status_code=status, attempts=attempts)

    def _server_message(self, exc: openai.APIStatusError) -> str:
        """The server's own explanation, one line, short, and without our key in it."""
        body = exc.body
        message = body.get("message") if isinstance(body, dict) else None
        text = str(message) if message else "no details"
        for secret in self._secrets:
            # Some servers echo the credential back in their error text.
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        if len(text) > _MAX_SERVER_MESSAGE_CHARS:
            text = text[: _MAX_SERVER_MESSAGE_CHARS - 3] + "..."
        return text


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return not _is_quota_exhausted(exc)
        # 408 is the server timing out on us: the same condition as a client-side timeout.
        return exc.status_code == 408 or exc.status_code >= 500
    return False


def _is_retried(exc: BaseException) -> bool:
    """Retried inside the attempt: transient HTTP failures, and a request that overran its
    own deadline (the next one may be quicker; the attempt deadline still bounds them)."""
    return _is_transient(exc) or isinstance(exc, http_limits.DeadlineExceeded)


def _is_quota_exhausted(exc: openai.APIStatusError) -> bool:
    # OpenAI reports an empty balance as a 429 too; only the error code tells them apart.
    return exc.status_code == 429 and "insufficient_quota" in (exc.code, exc.type)


def _retry_after_s(value: str | None) -> float | None:
    # Only the delta-seconds form; an HTTP-date falls back to exponential backoff.
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _exception(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


def _describe(exc: BaseException | None) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection error"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    return type(exc).__name__


def _content(completion: ChatCompletion) -> str:
    # An empty choice list or a refusal has no content; validating "" then fails as invalid
    # JSON, which routes it through the same single repair call as any other bad output.
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


def _usage(completion: ChatCompletion) -> TokenUsage:
    # Some local servers omit usage; the call still counts.
    usage = completion.usage
    if usage is None:
        return TokenUsage(calls=1)
    return TokenUsage(
        prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, calls=1
    )


def _summarise(error: ValidationError) -> str:
    """A one-line digest of a pydantic error, without echoing the (possibly long) input."""
    problems = []
    for item in error.errors(include_url=False)[:_MAX_REPORTED_VALIDATION_ERRORS]:
        location = ".".join(str(part) for part in item["loc"]) or "<root>"
        problems.append(f"{location}: {' '.join(item['msg'].split())}")
    more = error.error_count() - len(problems)
    if more > 0:
        problems.append(f"and {more} more")
    return "; ".join(problems)


def _repair_request(output_model: type[BaseModel], error: ValidationError) -> str:
    return (
        f"Your previous reply is not valid JSON for the {output_model.__name__} schema: "
        f"{_summarise(error)}.\n"
        "Reply again with only the corrected JSON object that matches the schema: "
        "no explanations, no Markdown code fences."
    )
