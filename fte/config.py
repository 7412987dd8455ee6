"""FTE's settings, loaded once per command: flags > environment > project file > defaults.

The project file is `fte.toml` in the working directory, or the file `FTE_CONFIG` names. It
holds the settings as top-level keys with the field names below (no `[fte]` table), e.g.::

    model = "gpt-4o"
    model_writer = "gpt-4o-mini"
    corpus = "docs/corpus"
    citation_policy = "mark"

Relative paths in the file are relative to the file's folder, so a project can be run from
anywhere with `FTE_CONFIG=...`. Secrets (API keys, tokens) are refused there: a project file
gets committed and copied around, the environment does not.

Environment names: `FTE_<FIELD>` for FTE's own settings (`FTE_MODEL`, `FTE_MODEL_PLANNER`,
`FTE_OFFLINE`, ...); the ecosystem's names where one exists (`OPENAI_API_KEY`,
`OPENAI_BASE_URL`, `DAPR_API_TOKEN`). Blank environment values count as unset.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from annotated_types import Ge, Gt, Le
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from fte.contracts import (
    DEFAULT_DEPTH,
    DEFAULT_MODEL,
    DEFAULT_SUB_QUESTIONS,
    MAX_DEPTH,
    MAX_SUB_QUESTIONS,
    MAX_WAIT_S,
    MIN_SUB_QUESTIONS,
    AgentModels,
    CitationPolicy,
    SourceKind,
    local_only,
)
from fte.errors import UsageError
from fte.llm_config import LIMIT_FIELDS as LLM_LIMIT_FIELDS
from fte.llm_config import ByteCount, LLMConfig, Seconds, mask_url, url_credentials
from fte.log_files import MB, LogLimits

PROJECT_FILE = "fte.toml"
CONFIG_ENV = "FTE_CONFIG"

Origin = Literal["flag", "env", "fte.toml", "default"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

# Long enough that first 3 + last 4 characters still leave most of the secret hidden.
_MIN_MASKABLE_CHARS = 16
# Words that mark a key as a credential even when it is not one of our fields.
_SECRET_WORDS = ("key", "token", "secret", "password")


_LLM_DEFAULTS = LLMConfig()


class FteSettings(BaseSettings):
    """Every setting a command may read. Build it with `load_settings`, not directly."""

    model_config = SettingsConfigDict(
        env_prefix="FTE_",
        env_ignore_empty=True,
        validate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Path(".fte")
    """Where the embedded Dapr runtime keeps its state, and `logs/fte.jsonl`."""
    out_dir: Path = Path("reports")
    """Folder the Markdown and JSON reports are written to."""
    corpus: Path = Path("examples/corpus")
    """Folder of .md/.txt/.html/.pdf documents the source finder searches."""
    model: str = DEFAULT_MODEL
    """Model name for every agent without an override of its own."""
    model_planner: str | None = None
    model_source_finder: str | None = None
    model_analyst: str | None = None
    model_fact_checker: str | None = None
    model_writer: str | None = None
    model_reviewer: str | None = None
    offline: bool = False
    """Use the built-in extractive model even if a model server is configured."""
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    dapr_api_token: SecretStr | None = Field(default=None, validation_alias="DAPR_API_TOKEN")
    state_url: SecretStr | None = None
    """`fte up`'s actor state store, postgres://... or redis://... (may hold a password:
    prefer FTE_STATE_URL to --state, which other users see in `ps`)."""
    pubsub_url: SecretStr | None = None
    """`fte up`'s pub/sub, redis://... (FTE_PUBSUB_URL or --pubsub)."""
    # The model server's limits: defaults and bounds are LLMConfig's (fte.llm).
    llm_request_deadline_s: Seconds = _LLM_DEFAULTS.request_deadline_s
    llm_attempt_deadline_s: Seconds = _LLM_DEFAULTS.attempt_deadline_s
    llm_max_retry_after_s: Seconds = _LLM_DEFAULTS.max_retry_after_s
    llm_max_response_bytes: ByteCount = _LLM_DEFAULTS.max_response_bytes
    llm_max_concurrent_requests: int = Field(
        default=_LLM_DEFAULTS.max_concurrent_requests, gt=0, le=1024
    )
    retention_days: float = Field(default=30.0, ge=0, le=36500, allow_inf_nan=False)
    """Finished runs older than this are purged by a running worker (fte.retention); 0 keeps
    them until `fte purge`."""
    log_max_mb: float = Field(default=20.0, gt=0, le=1_000_000, allow_inf_nan=False)
    """A log in `<data_dir>/logs` past this size is rotated (fte.log_files)."""
    log_backups: int = Field(default=3, ge=1, le=100)
    """Rotated copies kept of each log (`fte.jsonl.1` ...); older ones are deleted."""
    approval_timeout_s: float = Field(default=3600.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False)
    approval_reminder_interval_s: float = Field(
        default=600.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False
    )
    progress_checkin_interval_s: float = Field(
        default=120.0, gt=0, le=MAX_WAIT_S, allow_inf_nan=False
    )
    citation_policy: CitationPolicy = "remove"
    """What the writer does with a sentence whose citation fails the check."""
    # NoDecode: the environment says `FTE_SOURCES=local,web`, not a JSON list.
    sources: Annotated[list[SourceKind], NoDecode] = Field(default_factory=local_only, min_length=1)
    """Where source finders search: `local`, `web` or both (web: fte.web's search API)."""
    depth: int = Field(default=DEFAULT_DEPTH, ge=0, le=MAX_DEPTH)
    """Gap-filling rounds after the first pass (0: one pass, as before rounds existed)."""
    max_sub_questions: int = Field(
        default=DEFAULT_SUB_QUESTIONS, ge=MIN_SUB_QUESTIONS, le=MAX_SUB_QUESTIONS
    )
    """The most sub-questions the planner may write (it writes fewer for a narrow question)."""
    budget_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Stop researching before a run's estimated cost would pass this (USD; fte.pricing)."""
    max_tokens: int | None = Field(default=None, gt=0)
    """Stop researching before a run's model tokens would pass this."""
    schedule_min_interval_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    """Shortest interval `fte schedule add` accepts; lower it only for tests and demos."""
    log_level: LogLevel = "warning"
    """Console log level (the JSON log file always records INFO and above)."""

    _origins: dict[str, Origin] = PrivateAttr(default_factory=dict)
    _project_file: Path | None = PrivateAttr(default=None)

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("openai_api_key", "openai_base_url", "dapr_api_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # A pasted key often carries a newline; a whitespace-only value means "not set".
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
        return value

    @field_validator("data_dir", "out_dir", "corpus", mode="after")
    @classmethod
    def _expand_user(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Flags (init kwargs) > environment > project file; pydantic-settings adds the
        # defaults last. No .env or secrets-dir sources: one place per kind of setting.
        return init_settings, env_settings, ProjectFileSource(settings_cls)

    @property
    def origins(self) -> Mapping[str, Origin]:
        """Which source supplied each field (empty unless built by `load_settings`)."""
        return dict(self._origins)

    @property
    def project_file(self) -> Path | None:
        """The project file that was read, if any."""
        return self._project_file

    @property
    def log_file(self) -> Path:
        """Where the JSON log lines of every command go."""
        return self.data_dir / "logs" / "fte.jsonl"

    @property
    def log_limits(self) -> LogLimits:
        return LogLimits(max_bytes=int(self.log_max_mb * MB), backups=self.log_backups)

    def agent_models(self) -> AgentModels:
        """Each agent's model: its own override, else `model`."""
        return AgentModels(
            **{
                agent: getattr(self, f"model_{agent}") or self.model
                for agent in AgentModels.model_fields
            }
        )

    def llm_config(self) -> LLMConfig:
        """How to reach the model server (no server and no key means the offline model)."""
        limits = {name: getattr(self, f"llm_{name}") for name in LLM_LIMIT_FIELDS}
        return LLMConfig(api_key=self.openai_api_key, base_url=self.openai_base_url, **limits)

    def secret_values(self) -> list[str]:
        """The configured secrets in clear, for the log redactor; never print these."""
        return [
            *(
                secret.get_secret_value()
                for secret in (self.openai_api_key, self.dapr_api_token)
                if secret is not None
            ),
            *url_credentials(self.openai_base_url),
            *(
                credential
                for url in (self.state_url, self.pubsub_url)
                if url is not None
                for credential in url_credentials(url.get_secret_value())
            ),
        ]


SECRET_FIELDS = frozenset(
    name for name, info in FteSettings.model_fields.items() if info.annotation == SecretStr | None
)
# URLs whose userinfo may hold a credential (a gateway key): masked when shown, redacted in logs.
URL_FIELDS = frozenset({"openai_base_url"})


def env_name(field_name: str) -> str:
    """The environment variable a field is read from."""
    alias = FteSettings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else f"FTE_{field_name.upper()}"


def project_file_path() -> Path | None:
    """`$FTE_CONFIG` (which must exist), else `./fte.toml` if there is one."""
    named = os.environ.get(CONFIG_ENV, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise UsageError(f"{CONFIG_ENV}={named} does not name a file")
        return path
    default = Path(PROJECT_FILE)
    return default if default.is_file() else None


def read_project_file(path: Path) -> dict[str, Any]:
    """Parse and check a project file; every problem is a one-line `UsageError`."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        # The message ends with "(at line N, column M)".
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    known = FteSettings.model_fields
    for key, value in data.items():
        lowered = key.lower()
        # A setting that is not a secret may have a secret-sounding name (max_tokens).
        secretish = lowered not in known and any(word in lowered for word in _SECRET_WORDS)
        if lowered in SECRET_FIELDS or secretish:
            where = "the environment"
            if lowered in SECRET_FIELDS:
                where += f" ({env_name(lowered)})"
            raise UsageError(
                f"{path}: {key!r} looks like a secret; secrets do not belong in a project file, "
                f"set it in {where} instead"
            )
        if key not in known:
            hint = difflib.get_close_matches(key, known, n=1)
            if isinstance(value, dict):
                suggestion = "settings are top-level keys, not tables"
            elif hint:
                suggestion = f"did you mean {hint[0]!r}?"
            else:
                suggestion = f"known settings: {', '.join(known)}"
            raise UsageError(f"{path}: unknown setting {key!r}; {suggestion}")
        if isinstance(value, str) and known[key].annotation is Path:
            data[key] = path.parent / Path(value).expanduser()
    return data


class ProjectFileSource(PydanticBaseSettingsSource):
    """Settings from the project file, keyed by field name."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self.path = project_file_path()
        self.data = read_project_file(self.path) if self.path is not None else {}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


def load_settings(flags: Mapping[str, object] | None = None) -> FteSettings:
    """The effective settings; `flags` are field names to command-line values (None = not given)."""
    given: dict[str, Any] = {k: v for k, v in (flags or {}).items() if v is not None}
    unknown = sorted(set(given) - set(FteSettings.model_fields))
    if unknown:  # a bug in the caller, not a user error
        raise TypeError(f"load_settings got unknown flags: {', '.join(unknown)}")
    # Read the same sources pydantic-settings reads, to say which one supplied each field.
    project = ProjectFileSource(FteSettings)
    layers: list[tuple[Origin, set[str]]] = [
        ("flag", set(given)),
        ("env", _field_names(EnvSettingsSource(FteSettings)())),
        ("fte.toml", set(project())),
    ]
    origins: dict[str, Origin] = {}
    for name in FteSettings.model_fields:
        origins[name] = next((origin for origin, keys in layers if name in keys), "default")
    try:
        settings = FteSettings(**given)
    except ValidationError as exc:
        raise UsageError(_describe_errors(exc, origins, project.path)) from None
    settings._origins = origins
    settings._project_file = project.path
    return settings


def _field_for(key: str) -> str | None:
    """The field a source key stands for: its name, or (any case) its environment name."""
    if key in FteSettings.model_fields:
        return key
    return next(
        (name for name in FteSettings.model_fields if env_name(name).lower() == key.lower()), None
    )


def _field_names(values: Mapping[str, object]) -> set[str]:
    return {name for name in map(_field_for, values) if name is not None}


def _describe_errors(
    exc: ValidationError, origins: Mapping[str, Origin], project_file: Path | None
) -> str:
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else ""
        name = _field_for(key) or key
        origin = origins.get(name, "default")
        shown = "(hidden)" if name in SECRET_FIELDS else repr(error.get("input"))
        if origin == "env":
            where = f"{env_name(name)}={shown}"
        elif origin == "fte.toml":
            where = f"{project_file}: {name} = {shown}"
        else:
            where = f"option {name}={shown}"
        problems.append(f"{where} is invalid: expected {_expected(name, error['msg'])}")
    return "; ".join(problems)


def _expected(name: str, fallback: str) -> str:
    info = FteSettings.model_fields.get(name)
    if info is None:
        return fallback
    annotation = info.annotation
    if annotation is bool:
        return "true or false (also 1/0, yes/no, on/off)"
    if annotation is float:
        bounds = [f"greater than {m.gt}" for m in info.metadata if isinstance(m, Gt)]
        bounds += [f"at least {m.ge}" for m in info.metadata if isinstance(m, Ge)]
        bounds += [f"at most {m.le}" for m in info.metadata if isinstance(m, Le)]
        return " ".join(["a finite number", " and ".join(bounds)]).strip()
    if annotation is Path:
        return "a path"
    choices = get_args(annotation)
    if choices and all(isinstance(choice, str) for choice in choices):
        return "one of " + ", ".join(choices)
    if annotation in (str, str | None):
        return "text"
    return fallback[:1].lower() + fallback[1:]


def mask(secret: SecretStr | None) -> str:
    """`sk-...abcd` for a long secret, `****` for a short one, `(not set)` for none."""
    if secret is None:
        return "(not set)"
    value = secret.get_secret_value()
    if len(value) < _MIN_MASKABLE_CHARS:
        return "****"
    return f"{value[:3]}...{value[-4:]}"


def show(settings: FteSettings) -> str:
    """The effective settings, one `key = value  # from: <origin>` line each, secrets masked."""
    rows = [
        (name, _render(name, getattr(settings, name)), settings.origins.get(name, "unknown"))
        for name in FteSettings.model_fields
    ]
    key_width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [
        f"# project file: {settings.project_file or '(none)'}",
        *(
            f"{name.ljust(key_width)} = {value.ljust(value_width)}  # from: {origin}"
            for name, value, origin in rows
        ),
    ]
    return "\n".join(lines)


def _render(name: str, value: object) -> str:
    if name in SECRET_FIELDS:
        return mask(value if isinstance(value, SecretStr) else None)
    if name in URL_FIELDS and isinstance(value, str):
        value = mask_url(value)
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
