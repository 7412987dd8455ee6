"""The error hierarchy: every failure a user can act on is an `FteError`.

The CLI prints `str(error)` as one line and exits with `error.exit_code`;
anything else is a bug and shows a traceback only under `--debug`.
"""

from __future__ import annotations

from pathlib import Path


class FteError(Exception):
    """Base of every error FTE reports to a person."""

    exit_code = 1


class UsageError(FteError):
    """The user asked for something invalid (bad flag, bad path, bad query)."""

    exit_code = 2


class RuntimeSetupError(FteError):
    """The Dapr runtime could not be built, found, started or reached."""

    exit_code = 3


class UnknownTaskError(FteError):
    """No research run has this ID (in this data directory's runtime)."""

    exit_code = 4

    @classmethod
    def no_run(cls, task_id: str) -> UnknownTaskError:
        return cls(f"no research task with ID {task_id!r}")


class TaskStateError(FteError):
    """The task exists but is not in a state that allows the request (e.g. approving a done run)."""

    exit_code = 5


class SidecarBuildError(RuntimeSetupError):
    """Building daprd/placement/scheduler from the Go module failed."""


class DataDirInUseError(RuntimeSetupError):
    """Another launcher owns the data directory and its stack is not usable."""


class PromptError(FteError):
    """A prompt file is missing, malformed, or does not fit the fields its agent fills in."""


class LLMConfigError(FteError):
    """The LLM client cannot be built from the given settings (e.g. no key and no server)."""

    exit_code = 2


class LLMError(FteError):
    """A call to the model server failed; carries where it failed and how often it was tried.

    `attempts` counts the HTTP requests sent by the failing `LLMClient.structured` call, so a
    log line or error report says whether the inner HTTP retries were spent.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        agent: str,
        model: str,
        status_code: int | None,
        attempts: int,
    ) -> None:
        super().__init__(message)
        self.agent = agent
        self.model = model
        self.status_code = status_code
        self.attempts = attempts


class LLMTransientError(LLMError):
    """The server stayed unavailable (429/5xx/timeout/connection) through the inner retries.

    Retrying the whole activity later may succeed, so the workflow's retry policy owns it.
    """

    retryable = True


class ModelUnavailableError(LLMTransientError):
    """This worker cannot serve the run's model server (no credentials for it).

    Transient on purpose: the engine retries the activity, and another worker with the
    run's configuration may take the retry; this worker never answers with another model.
    """


class LLMPermanentError(LLMError):
    """Retrying the same request cannot succeed; a person has to change something first."""


class LLMAuthError(LLMPermanentError):
    """401/403: the API key is missing, wrong, or lacks access to the model."""


class LLMRequestError(LLMPermanentError):
    """400/404/422 and other 4xx: the request itself is wrong (model name, parameters)."""


class LLMQuotaError(LLMPermanentError):
    """429 `insufficient_quota`: the account is out of credit; waiting will not help."""


class LLMOutputError(LLMPermanentError):
    """The model's output did not match the expected JSON schema, even after one repair call."""


class LLMResponseTooLargeError(LLMPermanentError):
    """The server's answer is larger than `llm_max_response_bytes`; the same request would be too.

    Refused while reading, before it can reach a state store or a gRPC message.
    """


class LLMDeadlineError(LLMTransientError):
    """No complete answer within the request or attempt deadline (a stalled or trickling server).

    Transient: the workflow's retry policy may run the attempt again later.
    """


class ActivityResultTooLargeError(FteError):
    """An activity returned more than one activity result may hold (`fte.worker`)."""


class CorpusError(UsageError):
    """A local document corpus could not be loaded; `path` is the file or directory at fault."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message)
        self.path = path
