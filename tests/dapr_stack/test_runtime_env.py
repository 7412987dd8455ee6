"""The launched Dapr processes get only the environment they need: never the LLM key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fte.dapr_build import find_binaries
from fte.dapr_stack import STACK_RECORD, EmbeddedStack

pytestmark = pytest.mark.engine

LEAKY = {
    "OPENAI_API_KEY": "sk-proj-ENV-MUST-NOT-REACH-DAPR-0123456789",
    "OPENAI_BASE_URL": "http://user:URL-KEY-MUST-NOT-REACH-DAPR@127.0.0.1:9/v1",
    "FTE_MODEL": "some-model",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-must-not-reach-dapr",
    "ANTHROPIC_API_KEY": "sk-ant-must-not-reach-dapr",
}


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode(errors="replace").partition("=") for entry in raw.split(b"\0") if entry)
    return {name: value for name, _, value in pairs}


def test_dapr_processes_do_not_inherit_llm_keys_or_other_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in LEAKY.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TZ", "UTC")  # an ordinary variable still gets through
    data_dir = tmp_path / "data"
    with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()):
        pids = json.loads((data_dir / STACK_RECORD).read_text())["pids"]
        assert set(pids) == {"placement", "scheduler", "daprd"}
        for role, pid in pids.items():
            environ = _environ(pid)
            leaked = sorted(set(LEAKY) & set(environ))
            assert not leaked, f"{role} received {leaked}"
            assert not any(value in environ.values() for value in LEAKY.values()), role
            assert environ.get("TZ") == "UTC", role
            assert "PATH" in environ, role


def test_daprd_and_scheduler_run_on_one_thread_unless_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOMAXPROCS=1 for daprd and the scheduler by default (benchmarks/profile_throughput.py:
    less CPU per activity), Go's default for placement; an exported GOMAXPROCS wins."""
    monkeypatch.delenv("GOMAXPROCS", raising=False)
    for exported in (None, "2"):
        if exported is not None:
            monkeypatch.setenv("GOMAXPROCS", exported)
        data_dir = tmp_path / f"data-{exported}"
        with EmbeddedStack(data_dir=data_dir, binaries=find_binaries()):
            pids = json.loads((data_dir / STACK_RECORD).read_text())["pids"]
            for role, pid in pids.items():
                default = None if role == "placement" else "1"
                assert _environ(pid).get("GOMAXPROCS") == (exported or default), role
