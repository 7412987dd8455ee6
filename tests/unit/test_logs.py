"""Logging: JSON lines in the file, readable stderr, secrets redacted everywhere, idempotent."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from fte.logs import REDACTED, Redactor, configure_logging, reset_logging
from tests.unit.conftest import API_KEY

SECRET = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave structlog, the root logger and bound context as other tests expect them."""
    yield
    reset_logging()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "data" / "logs" / "fte.jsonl"


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_file_gets_one_json_object_per_event_with_bound_context(log_file: Path) -> None:
    configure_logging(json_file=log_file)
    log = structlog.get_logger("fte.activities")
    structlog.contextvars.bind_contextvars(task_id="t-1", workflow_id="t-1")

    log.info("plan written", activity="plan", task_number=3)
    log.debug("too chatty for the file")
    logging.getLogger("dapr.ext.workflow").info("orchestrator started")

    first, second = read_lines(log_file)
    assert list(first)[:4] == ["timestamp", "level", "logger", "event"]
    assert first["event"] == "plan written"
    assert first["level"] == "info"
    assert first["logger"] == "fte.activities"
    assert (first["task_id"], first["workflow_id"]) == ("t-1", "t-1")
    assert (first["activity"], first["task_number"]) == ("plan", 3)
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    # stdlib records from the SDKs land in the same file, in the same shape.
    assert second["event"] == "orchestrator started"
    assert (second["level"], second["logger"]) == ("info", "dapr.ext.workflow")


def test_exceptions_are_recorded_as_text(log_file: Path) -> None:
    configure_logging(json_file=log_file)
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger("fte.llm").exception("call failed")

    (line,) = read_lines(log_file)
    assert line["level"] == "error"
    assert "ValueError: boom" in line["exception"]


def test_console_shows_warnings_and_keeps_info_out(
    log_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_file=log_file)
    log = structlog.get_logger("fte.dapr_stack")
    log.info("quiet detail")
    log.warning("runtime process ignored SIGTERM", role="placement")

    err = capfd.readouterr().err
    assert "quiet detail" not in err
    assert "runtime process ignored SIGTERM" in err and "role=placement" in err
    assert "{" not in err  # human-readable, not JSON
    assert len(read_lines(log_file)) == 2


def test_verbose_console_shows_our_debug_but_not_sdk_chatter(
    capfd: pytest.CaptureFixture[str],
) -> None:
    configure_logging(verbose=True)
    structlog.get_logger("fte.worker").debug("workflow worker ready")
    logging.getLogger("openai").info("sdk detail")
    logging.getLogger("openai").warning("sdk warning")

    err = capfd.readouterr().err
    assert "workflow worker ready" in err
    assert "sdk detail" not in err
    assert "sdk warning" in err


def test_library_with_its_own_handler_is_not_printed_twice(
    log_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The Dapr SDK prints through its own handler at the level FTE picked for it."""
    sdk = logging.getLogger("durabletask-client-under-test")
    own = logging.StreamHandler()
    own.setLevel(logging.CRITICAL)  # what fte.wiring asks of the workflow client
    sdk.addHandler(own)
    try:
        configure_logging(json_file=log_file)
        sdk.warning("instance not found")
    finally:
        sdk.removeHandler(own)

    assert "instance not found" not in capfd.readouterr().err
    assert [line["event"] for line in read_lines(log_file)] == ["instance not found"]


@pytest.mark.parametrize("via", ["structlog", "stdlib"])
def test_secrets_never_reach_file_or_console(
    via: str, log_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json_file=log_file, secrets=[SECRET])
    message = f"key {API_KEY} and {SECRET} with header Bearer abc.def-123"
    if via == "structlog":
        structlog.get_logger("fte.llm").warning(
            message, api_key=API_KEY, headers={"Authorization": f"Bearer {SECRET}"}
        )
    else:
        logging.getLogger("openai").warning("request failed: %s", message)
    try:
        raise RuntimeError(f"server said no to {SECRET}")
    except RuntimeError:
        if via == "structlog":
            structlog.get_logger("fte.llm").exception("failed")
        else:
            logging.getLogger("openai").exception("failed")

    err = capfd.readouterr().err
    written = log_file.read_text(encoding="utf-8")
    for output in (err, written):
        assert SECRET not in output
        assert API_KEY not in output
        assert "abc.def-123" not in output
        assert REDACTED in output
        assert "Bearer ***" in output
    assert all(line["event"] for line in read_lines(log_file))


def test_configuring_twice_does_not_duplicate_lines(
    log_file: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    handlers_before = len(logging.getLogger().handlers)
    configure_logging(json_file=log_file)
    configure_logging(json_file=log_file, secrets=[SECRET])
    assert len(logging.getLogger().handlers) == handlers_before + 2

    structlog.get_logger("fte.cli").warning("once")
    logging.getLogger("dapr").warning("once from stdlib")

    assert [line["event"] for line in read_lines(log_file)] == ["once", "once from stdlib"]
    err = capfd.readouterr().err
    assert err.count("once") == 2  # one line each


def test_reset_restores_root_logger(log_file: Path) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    configure_logging(verbose=True, json_file=log_file)
    reset_logging()
    assert root.level == level
    assert root.handlers == handlers


def test_unwritable_log_file_falls_back_to_console(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")

    configure_logging(json_file=blocker / "logs" / "fte.jsonl")

    assert "cannot write the JSON log" in capfd.readouterr().err


def test_redactor_walks_nested_values_and_ignores_tiny_secrets() -> None:
    redact = Redactor(["ab", "", SECRET])
    event = {
        "event": "ab cd",
        "nested": {"list": [SECRET, ("x", API_KEY)]},
        "count": 3,
    }
    assert redact(None, "info", event) == {
        "event": "ab cd",
        "nested": {"list": [REDACTED, ("x", REDACTED)]},
        "count": 3,
    }


def test_default_call_still_works(capfd: pytest.CaptureFixture[str]) -> None:
    """The CLI's original call: console only, WARNING and above."""
    configure_logging(verbose=False)
    structlog.get_logger("fte.cli").warning("still here")
    assert "still here" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        pytest.param("info", ["detail", "problem"], id="info"),
        pytest.param("ERROR", [], id="error"),
    ],
)
def test_console_level_by_name(
    level: str, shown: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(level=level)
    structlog.get_logger("fte.cli").info("detail")
    structlog.get_logger("fte.cli").warning("problem")
    err = capfd.readouterr().err
    assert [word for word in ("detail", "problem") if word in err] == shown


def test_unknown_console_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging(level="loud")


@pytest.mark.parametrize(
    ("line", "shown"),
    [
        pytest.param(
            "HTTP Request: POST http://user:p4ss-w0rd@10.0.0.1:8080/v1/chat/completions",
            "HTTP Request: POST http://***@10.0.0.1:8080/v1/chat/completions",
            id="user-and-password",
        ),
        pytest.param(
            "connecting to https://only-a-token@gateway.example/v1",
            "connecting to https://***@gateway.example/v1",
            id="token-as-user",
        ),
        pytest.param(
            "POSTGRES_DSN=postgres://fte:s3cret@db:5432/fte?sslmode=require",
            "POSTGRES_DSN=postgres://***@db:5432/fte?sslmode=require",
            id="dsn",
        ),
        pytest.param(
            "see https://example.com/a@b and mail@example.com",
            "see https://example.com/a@b and mail@example.com",
            id="no-userinfo",
        ),
    ],
)
def test_credentials_in_urls_are_redacted_whoever_logs_them(line: str, shown: str) -> None:
    assert Redactor().text(line) == shown
