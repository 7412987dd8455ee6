"""The configured API key never reaches logs, artifacts or reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import QUERY, SAMPLE_CORPUS, _env, fte
from tests.pipeline.conftest import SUB_QUESTIONS
from tests.support.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.engine

SECRET = "sk-proj-THIS-KEY-MUST-NEVER-LEAK-0123456789abcdef"


def test_api_key_never_reaches_logs_reports_or_state(tmp_path: Path) -> None:
    data_dir, out_dir = tmp_path / "data", tmp_path / "reports"
    llm = ScriptedLLM(SUB_QUESTIONS)
    with llm.serve() as url:
        env = _env(OPENAI_API_KEY=SECRET, OPENAI_BASE_URL=url)
        result = fte(
            "--debug", "research", QUERY, "--corpus", str(SAMPLE_CORPUS), "--id", "secret-run",
            "--data-dir", str(data_dir), "--out", str(out_dir), env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        shown = fte("config", "show", env=env)
    assert sum(llm.calls.values()) >= 6, "the run used the configured server, not the offline model"

    # Everything the run left behind: reports, the JSON log, the sidecar logs, the
    # SQLite state (workflow history and artifacts), and what the terminal showed.
    files = [p for p in [*out_dir.rglob("*"), *data_dir.rglob("*")] if p.is_file()]
    assert any(p.name == "fte.jsonl" for p in files)
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
    for stream in (result.stdout, result.stderr, shown.stdout, shown.stderr):
        assert SECRET not in stream
    assert "sk-...cdef" in shown.stdout  # masked, yet recognisable

    # The JSON log carries the task, workflow and activity names and attempt counts.
    events = [
        json.loads(line) for line in (data_dir / "logs" / "fte.jsonl").read_text().splitlines()
    ]
    starts = [e for e in events if e.get("event") == "activity.start"]
    assert {e["task_id"] for e in starts} == {"secret-run"}
    assert {"planner", "analyst", "writer"} <= {e["activity"] for e in starts}
    assert any(e.get("workflow_id", "").startswith("secret-run.") for e in starts)
    calls = [e for e in events if e.get("event") == "llm.call"]
    assert calls and all(e["http_attempts"] >= 1 for e in calls)


URL_SECRET = "url-pass-MUST-NEVER-LEAK-9f8e7d6c5b4a"


def test_key_in_the_base_url_is_masked_everywhere(tmp_path: Path) -> None:
    """`http://user:KEY@host/v1` (a proxy or gateway credential) is as secret as the key."""
    data_dir, out_dir = tmp_path / "data", tmp_path / "reports"
    llm = ScriptedLLM(SUB_QUESTIONS)
    with llm.serve() as url:
        plain = url.rstrip("/")
        with_key = plain.replace("http://", f"http://fte-user:{URL_SECRET}@", 1)
        env = _env(OPENAI_BASE_URL=with_key)
        result = fte(
            "--debug", "research", QUERY, "--corpus", str(SAMPLE_CORPUS), "--id", "url-key-run",
            "--data-dir", str(data_dir), "--out", str(out_dir), env=env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        shown = fte("config", "show", env=env)
    assert sum(llm.calls.values()) >= 6, "the run used the configured server"

    files = [p for p in [*out_dir.rglob("*"), *data_dir.rglob("*")] if p.is_file()]
    assert any(p.name == "state.db" for p in files) and any(p.name == "fte.jsonl" for p in files)
    for path in files:
        assert URL_SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
    for stream in (result.stdout, result.stderr, shown.stdout, shown.stderr):
        assert URL_SECRET not in stream
    assert "fte-user:****@127.0.0.1" in shown.stdout  # masked, yet recognisable
    report = json.loads((out_dir / "url-key-run.json").read_text())
    assert report["llm_endpoint"] == f"OpenAI-compatible server {plain}"
