"""Logging: readable lines on stderr, JSON lines in a file, secrets redacted in both.

Everything goes through the stdlib `logging` tree, so the Dapr and openai SDKs (which log
through stdlib) land in the same places as FTE's structlog events:

- stderr: `ConsoleRenderer` (colours only on a terminal). FTE's events from WARNING, or DEBUG
  when verbose; other libraries' records from WARNING always, so `--debug` shows our story
  without the SDKs' wire chatter, and never the records of a library logger that has an
  output handler of its own (it printed them already).
- `json_file` (normally `<data_dir>/logs/fte.jsonl`): every record from INFO as one JSON object
  per line: `timestamp` (ISO-8601 UTC), `level`, `logger`, `event`, plus whatever context was
  bound (`task_id`, `activity`, `workflow_id`, `agent`, `model`, ...). Other processes may
  rotate it (`fte.log_files`).

Redaction runs twice: on the event dict's string values (so JSON escaping cannot hide a
secret from it) and on the final rendered line (so exception tracebacks and reprs are covered).
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"
# Shorter "secrets" would mangle ordinary words in every line and protect nothing.
MIN_SECRET_CHARS = 4
KEY_PATTERNS = (
    (re.compile(r"sk-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # The userinfo of any URL (`http://user:KEY@host`, a DSN's password): httpx logs every
    # request URL at INFO, userinfo included.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#@]+@"), rf"\1{REDACTED}@"),
)

LEADING_FIELDS = ("timestamp", "level", "logger", "event")

_installed: list[logging.Handler] = []
_root_level_before: int | None = None


class Redactor:
    """Replaces configured secrets and key-shaped strings with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept = {secret for secret in secrets if len(secret.strip()) >= MIN_SECRET_CHARS}
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(kept, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, REDACTED)
        for pattern, replacement in KEY_PATTERNS:
            value = pattern.sub(replacement, value)
        return value

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.value(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.value(item) for item in value]
        if isinstance(value, tuple):
            return tuple(self.value(item) for item in value)
        return value  # other objects are rendered later; the formatter redacts the output

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        return {
            key: value if key == "_record" else self.value(value)
            for key, value in event_dict.items()
        }


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    def __init__(self, redactor: Redactor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


class _ConsoleFilter(logging.Filter):
    """FTE's own events from `ours`; other libraries' records from WARNING at least.

    A library logger with an output handler of its own (the Dapr SDK attaches a StreamHandler
    with the level FTE chose for it) has already printed what it wants printed: showing its
    records again would double them and undo a deliberately quiet level. The file still
    gets them.
    """

    def __init__(self, ours: int) -> None:
        super().__init__()
        self.ours = ours
        self.foreign = max(ours, logging.WARNING)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) and hasattr(record, "_logger"):
            return record.levelno >= self.ours
        return record.levelno >= self.foreign and not _prints_itself(record.name)


def _prints_itself(name: str) -> bool:
    logger: logging.Logger | None = logging.getLogger(name)
    root = logging.getLogger()
    while logger is not None and logger is not root:
        if any(not isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def _drop_formatter_leftovers(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Another handler's Formatter may have set these on the record; `extra` cannot use them."""
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


def _clock(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Show just the time of day on the console; the file keeps the full UTC timestamp."""
    stamp = event_dict.get("timestamp")
    if isinstance(stamp, str) and len(stamp) >= 19:
        event_dict["timestamp"] = stamp[11:19]
    return event_dict


def _leading_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put when/what first in each JSON line, context after, so the file reads top-down."""
    first = {key: event_dict[key] for key in LEADING_FIELDS if key in event_dict}
    return first | {key: value for key, value in event_dict.items() if key not in first}


def _console_level(verbose: bool, level: str | None) -> int:
    if verbose:
        return logging.DEBUG
    if level is None:
        return logging.WARNING
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    *,
    verbose: bool = False,
    json_file: Path | None = None,
    secrets: Iterable[str] = (),
    level: str | None = None,
) -> None:
    """Set up structlog and stdlib logging; calling it again replaces the earlier set-up.

    `level` is the console level name (default "warning"); `verbose` forces DEBUG. `secrets`
    are redacted wherever they appear; pass the configured API keys and tokens.
    """
    global _root_level_before
    _remove_handlers()
    redactor = Redactor(secrets)
    console_level = _console_level(verbose, level)

    stamped: list[Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    foreign_chain: list[Processor] = [
        structlog.stdlib.ExtraAdder(),
        _drop_formatter_leftovers,
        *stamped,
        redactor,
    ]

    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    console.addFilter(_ConsoleFilter(console_level))
    console.setFormatter(
        _RedactingFormatter(
            redactor,
            foreign_pre_chain=foreign_chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _clock,
                # Plain tracebacks: rich's boxes wrap long lines (splitting a secret where
                # redaction cannot see it) and show locals (where keys live).
                structlog.dev.ConsoleRenderer(
                    colors=sys.stderr.isatty(),
                    exception_formatter=structlog.dev.plain_traceback,
                ),
            ],
        )
    )
    handlers: list[logging.Handler] = [console]

    file_problem: OSError | None = None
    if json_file is not None:
        try:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            # Watched: the file may be rotated by another process (fte.log_files); each
            # line is written to whatever file has the name now.
            to_file = logging.handlers.WatchedFileHandler(json_file, encoding="utf-8")
        except OSError as exc:
            file_problem = exc
        else:
            to_file.setLevel(logging.INFO)
            to_file.setFormatter(
                _RedactingFormatter(
                    redactor,
                    foreign_pre_chain=foreign_chain,
                    processors=[
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.format_exc_info,
                        _leading_fields,
                        structlog.processors.JSONRenderer(),
                    ],
                )
            )
            handlers.append(to_file)

    lowest = min(handler.level for handler in handlers)
    root = logging.getLogger()
    if _root_level_before is None:
        _root_level_before = root.level
    root.setLevel(lowest)
    for handler in handlers:
        root.addHandler(handler)
    _installed.extend(handlers)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *stamped,
            redactor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lowest),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    if file_problem is not None:
        structlog.get_logger(__name__).warning(
            "cannot write the JSON log; logging to the console only",
            path=str(json_file),
            error=str(file_problem),
        )


def _remove_handlers() -> None:
    root = logging.getLogger()
    while _installed:
        handler = _installed.pop()
        root.removeHandler(handler)
        handler.close()


def reset_logging() -> None:
    """Undo `configure_logging`: our handlers closed, root level and structlog defaults back."""
    global _root_level_before
    _remove_handlers()
    if _root_level_before is not None:
        logging.getLogger().setLevel(_root_level_before)
        _root_level_before = None
    structlog.reset_defaults()
