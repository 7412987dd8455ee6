"""The `fte` command as a user runs it: separate processes, the real embedded Dapr stack."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fte import artifacts
from fte.cli import main
from fte.dapr_stack import live_stack
from tests.support import PROJECT_ROOT
from tests.support.processes import pid_alive, wait_for

pytestmark = pytest.mark.engine

SAMPLE_CORPUS = PROJECT_ROOT / "examples" / "corpus"
QUERY = "How do durable workflows recover from crashes?"
TIMEOUT_S = 180


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "DAPR_", "FTE_DATA_DIR", "FTE_MODEL"))
    }
    env.update(extra)
    return env


def fte(
    *args: str, env: dict[str, str] | None = None, timeout: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fte", *args],
        cwd=PROJECT_ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def fte_background(*args: str, log: Path) -> subprocess.Popen[str]:
    handle = log.open("w")
    return subprocess.Popen(
        [sys.executable, "-m", "fte", *args],
        cwd=PROJECT_ROOT,
        env=_env(),
        stdout=handle,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_stage(data_dir: Path, task_id: str, stage: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    # Let the research process own the stack first; `status` then attaches to it.
    while live_stack(data_dir) is None:
        assert time.monotonic() < deadline, "the research process never started its stack"
        time.sleep(0.1)
    while time.monotonic() < deadline:
        result = fte("status", task_id, "--data-dir", str(data_dir))
        if result.returncode == 0 and f"[{stage}]" in result.stdout:
            return
        time.sleep(0.5)
    raise AssertionError(f"{task_id} never reached {stage}")


def artifact_keys(data_dir: Path, task_id: str) -> list[str]:
    with sqlite3.connect(data_dir / "state.db") as db:
        rows = db.execute(
            "SELECT key FROM state WHERE key LIKE ?",
            (f"%{artifacts.artifact_key(task_id, '')}%",),
        ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True)
class FinishedRun:
    data_dir: Path
    out_dir: Path
    task_id: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """The README's main command, once, with the offline model on the sample corpus."""
    root = tmp_path_factory.mktemp("cli")
    data_dir, out_dir = root / "data", root / "reports"
    result = fte(
        "research", QUERY, "--corpus", str(SAMPLE_CORPUS), "--id", "main-run",
        "--data-dir", str(data_dir), "--out", str(out_dir),
    )  # fmt: skip
    return FinishedRun(data_dir, out_dir, "main-run", result)


def test_main_command_writes_a_report_whose_citations_all_resolve(
    finished_run: FinishedRun,
) -> None:
    result = finished_run.result
    assert result.returncode == 0, result.stderr
    assert "OFFLINE MODEL" in result.stderr
    markdown_path = Path(result.stdout.strip())
    assert markdown_path == (finished_run.out_dir / "main-run.md").resolve()
    markdown = markdown_path.read_text()
    assert "offline" in markdown.splitlines()[2].lower(), "the report header says offline"

    cited_numbers = {int(n) for n in re.findall(r"\[(\d+)\]", markdown)}
    listed = dict(re.findall(r"^(\d+)\. (.+)$", markdown, re.MULTILINE))
    assert cited_numbers, "the report cites sources"
    assert cited_numbers == {int(n) for n in listed}

    document = json.loads((finished_run.out_dir / "main-run.json").read_text())
    sources = {s["id"]: s for s in document["sources"]}
    for section in document["sections"]:
        for paragraph in section["paragraphs"]:
            for source_id in paragraph["source_ids"]:
                location = Path(sources[source_id]["location"])
                assert location.is_file() and location.is_relative_to(SAMPLE_CORPUS)
    supported = {c["claim"]["id"] for c in document["claims"] if c["verdict"] == "supported"}
    for section in document["sections"]:
        for paragraph in section["paragraphs"]:
            assert set(paragraph["claim_ids"]) <= supported
    # Evidence quotes really are in the passages they cite.
    texts = {s["id"]: s for s in document["sources"]}
    assert all(c["evidence"] for c in document["claims"] if c["verdict"] == "supported")
    assert texts
    assert document["integrity"]["unknown_sources"] == 0
    for key in ("sub_questions", "usage_by_agent", "stage_seconds", "integrity", "models"):
        assert document[key]


def test_a_token_budget_ends_the_research_and_the_run_completes(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    """The main run (one gap-filling round by default) again, with less than it spent."""
    first = json.loads((finished_run.out_dir / "main-run.json").read_text())
    assert first["rounds"], "the default run does one gap-filling round"
    spent = first["usage_total"]["prompt_tokens"] + first["usage_total"]["completion_tokens"]
    limit = spent * 3 // 4
    result = fte(
        "research", QUERY, "--corpus", str(SAMPLE_CORPUS), "--id", "budget-run",
        "--max-tokens", str(limit),
        "--data-dir", str(finished_run.data_dir), "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Note: the budget ended the research: " in result.stderr
    assert f"of {limit:,} tokens)" in result.stderr
    markdown = (tmp_path / "budget-run.md").read_text()
    assert "**The budget ended the research: " in markdown
    document = json.loads((tmp_path / "budget-run.json").read_text())
    assert document["spend"]["max_tokens"] == limit
    status = fte("status", "budget-run", "--data-dir", str(finished_run.data_dir))
    assert "[completed]" in status.stdout and f"of {limit:,} tokens" in status.stdout


def test_list_status_and_report_formats(finished_run: FinishedRun, tmp_path: Path) -> None:
    data = ("--data-dir", str(finished_run.data_dir))
    listing = fte("list", *data)
    assert listing.returncode == 0
    assert re.search(r"main-run\s+completed\s+\S+\s+How do durable workflows", listing.stdout)

    status = fte("status", "main-run", *data)
    assert status.returncode == 0 and "[completed]" in status.stdout

    html = fte("report", "main-run", "--format", "html", "--out", str(tmp_path), *data)
    assert html.returncode == 0, html.stderr
    page = Path(html.stdout.strip()).read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lower().startswith("<!doctype html>")


def test_detach_returns_at_once_and_watch_follows_to_the_end(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data = ("--data-dir", str(data_dir))
    started = time.monotonic()
    detached = fte("research", QUERY, "--detach", "--id", "bg-run", *data)
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.strip() == "bg-run"
    assert time.monotonic() - started < 60
    assert "background worker" in detached.stderr

    watched = fte("watch", "bg-run", *data)
    assert watched.returncode == 0, watched.stderr
    assert "[completed]" in watched.stderr
    report = fte("report", "bg-run", "--out", str(tmp_path / "out"), *data)
    assert report.returncode == 0 and Path(report.stdout.strip()).is_file()

    # The background worker leaves once nothing is unfinished, taking its stack along.
    deadline = time.monotonic() + 60
    while live_stack(data_dir) is not None:
        assert time.monotonic() < deadline, "background worker did not exit when idle"
        time.sleep(0.5)

    # Purging removes the history, every artifact (the report too) and the list entry.
    assert artifact_keys(data_dir, "bg-run")
    purged = fte("purge", "bg-run", *data)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == "bg-run"
    assert artifact_keys(data_dir, "bg-run") == []
    assert "bg-run" not in fte("list", *data).stdout
    gone = fte("status", "bg-run", *data)
    assert gone.returncode == 4 and "no research task" in gone.stderr
    # purge needed a worker (the sidecar routes to workflow instances only then); the
    # one it started in the background leaves again when idle.
    deadline = time.monotonic() + 60
    while live_stack(data_dir) is not None:
        assert time.monotonic() < deadline, "background worker did not exit when idle"
        time.sleep(0.5)


@pytest.fixture
def gated_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """`fte research --approve-plan` in its own process, waiting at the gate."""
    data_dir = tmp_path / "data"
    log = tmp_path / "research.log"
    proc = fte_background(
        "research", QUERY, "--approve-plan", "--id", "gated", "--data-dir", str(data_dir),
        "--out", str(tmp_path / "out"), log=log,
    )  # fmt: skip
    try:
        wait_for_stage(data_dir, "gated", "awaiting_approval")
        yield proc, data_dir, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_approve_from_a_second_process(
    gated_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    proc, data_dir, log = gated_run
    approved = fte("approve", "gated", "--comment", "looks good", "--data-dir", str(data_dir))
    assert approved.returncode == 0, approved.stderr
    assert proc.wait(timeout=TIMEOUT_S) == 0, log.read_text()

    again = fte("approve", "gated", "--data-dir", str(data_dir))
    assert again.returncode == 5
    assert "already ended (completed)" in again.stderr


def test_reject_from_a_second_process(gated_run: tuple[subprocess.Popen[str], Path, Path]) -> None:
    proc, data_dir, log = gated_run
    rejected = fte("reject", "gated", "--reason", "out of scope", "--data-dir", str(data_dir))
    assert rejected.returncode == 0, rejected.stderr
    assert proc.wait(timeout=TIMEOUT_S) == 6
    assert "rejected: out of scope" in log.read_text()
    assert artifact_keys(data_dir, "gated") == []


def test_ctrl_c_detaches_without_cancelling(
    gated_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    proc, data_dir, log = gated_run
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=TIMEOUT_S) == 130
    output = log.read_text()
    assert "Detached; the run goes on durably" in output
    assert "fte watch gated" in output and "fte cancel gated" in output
    assert "Traceback" not in output
    # The run was not cancelled: it is still waiting for its approval.
    status = fte("status", "gated", "--data-dir", str(data_dir))
    assert status.returncode == 0 and "[awaiting_approval]" in status.stdout


def test_sigkilled_research_process_resumes_from_its_checkpoint(
    gated_run: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    """Kill `fte research` and its whole embedded stack; the run continues afterwards."""
    proc, data_dir, _ = gated_run
    stack_pids = json.loads((data_dir / "stack.json").read_text())["pids"].values()
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    # PR_SET_PDEATHSIG takes the stack down with its launcher: nothing serves the run now.
    def stack_gone() -> bool:
        return not any(pid_alive(pid) for pid in stack_pids)

    wait_for(stack_gone, "the stack to exit with its launcher", timeout=60)
    assert live_stack(data_dir) is None

    # Approving starts a background worker on the same data directory, which picks the
    # run up at its checkpoint (the approval gate) and finishes it.
    approved = fte("approve", "gated", "--data-dir", str(data_dir))
    assert approved.returncode == 0, approved.stderr
    watched = fte("watch", "gated", "--data-dir", str(data_dir))
    assert watched.returncode == 0, watched.stderr
    document = fte("report", "gated", "--format", "json", "--out", str(data_dir.parent / "o"),
                   "--data-dir", str(data_dir))  # fmt: skip
    assert document.returncode == 0
    report = json.loads(Path(document.stdout.strip()).read_text())
    # Planning ran once, before the kill: one planner call in the run's token accounting.
    assert report["usage_by_agent"]["planner"]["calls"] == 1


def test_cancel_runs_compensation(gated_run: tuple[subprocess.Popen[str], Path, Path]) -> None:
    proc, data_dir, log = gated_run
    assert artifact_keys(data_dir, "gated"), "the plan artifact exists before cancelling"
    cancelled = fte("cancel", "gated", "--reason", "wrong corpus", "--data-dir", str(data_dir))
    assert cancelled.returncode == 0, cancelled.stderr
    assert proc.wait(timeout=TIMEOUT_S) == 6
    assert "cancelled: wrong corpus" in log.read_text()
    assert artifact_keys(data_dir, "gated") == []


# -- bad input: one line, a distinct exit code, no traceback, nothing lost -----------


def _in_data_dir(tmp_path: Path, name: str, content: str, argv: list[str]) -> list[str]:
    """`argv`, run on a data directory that holds `name` with `content`."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(exist_ok=True)
    (data_dir / name).write_text(content)
    return argv


_ALL_PORTS = {
    name: 40000 + i
    for i, name in enumerate(
        ("placement", "placement_healthz", "placement_raft", "scheduler", "scheduler_healthz",
         "scheduler_etcd_client", "scheduler_etcd_peer", "daprd_grpc", "daprd_http",
         "daprd_internal_grpc")
    )
}  # fmt: skip


def _stack_json(**changes: object) -> str:
    """A stack record as the launcher writes it, with `changes`."""
    record = {"data_dir": "d", "data_dir_id": [1, 2], "owner_pid": 1, "ready": True,
              "ports": _ALL_PORTS, "pids": {}, "executables": {}}  # fmt: skip
    return json.dumps(record | changes)


def _corpus(tmp_path: Path, files: dict[str, bytes]) -> str:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, content in files.items():
        (root / name).write_bytes(content)
    return str(root)


def _corpus_of_links_out(tmp_path: Path) -> str:
    root = Path(_corpus(tmp_path, {}))
    (root / "leak.txt").symlink_to("/etc/passwd")
    return str(root)


def _a_file(tmp_path: Path) -> str:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return str(path)


def _symlink_loop(tmp_path: Path) -> str:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    return str(loop / "reports")


def _out_holding(tmp_path: Path, name: str) -> str:
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_text("an earlier report")
    return str(out)


BAD_RESEARCH_INPUTS = [
    pytest.param(lambda t: ["research", ""], 2, "query is empty", id="empty-query"),
    pytest.param(lambda t: ["research", "   \n "], 2, "query is empty", id="blank-query"),
    pytest.param(
        lambda t: ["research", QUERY, "--corpus", str(t / "nope")],
        2,
        "does not exist",
        id="missing-corpus",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--corpus", _corpus(t, {})],
        2,
        "no supported files",
        id="empty-corpus",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--corpus", _corpus(t, {"a.md": b"", "b.txt": b""})],
        2,
        "empty",
        id="only-empty-files",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--corpus", _corpus(t, {"a.md": b"ok\x00\x01\x02" * 50})],
        2,
        "binary",
        id="binary-file",
    ),
    pytest.param(
        lambda t: [
            "research",
            QUERY,
            "--corpus",
            str(SAMPLE_CORPUS / "patterns" / "fan-out-fan-in.md"),
        ],
        2,
        "not a directory",
        id="corpus-is-a-file",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--frobnicate"], 2, "unrecognized arguments", id="bad-flag"
    ),
    pytest.param(lambda t: ["research"], 2, "required: query", id="missing-query"),
    pytest.param(
        lambda t: ["research", QUERY, "--id", "../../etc/passwd"],
        2,
        "invalid task ID",
        id="path-escaping-id",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--id", "has space"], 2, "invalid task ID", id="bad-id"
    ),
    pytest.param(
        lambda t: [
            "research",
            QUERY,
            "--out",
            str(SAMPLE_CORPUS / "patterns" / "fan-out-fan-in.md"),
        ],
        2,
        "is a file",
        id="out-is-a-file",
    ),
    pytest.param(lambda t: ["reject", "some-id"], 2, "--reason", id="reject-without-reason"),
    pytest.param(
        lambda t: ["purge", "--older-than", "7 days"], 2, "invalid duration", id="bad-duration"
    ),
    pytest.param(
        lambda t: ["report", "x", "--format", "pdf"], 2, "invalid choice", id="bad-format"
    ),
    # Runtime set-up (exit 3): a leading NAME=value sets the environment, as in a shell.
    pytest.param(
        lambda t: _in_data_dir(t, "stack.json", "[1]", ["list"]),
        3,
        "stack.json is not a stack record fte wrote (Input should be an object)",
        id="stack-json-not-an-object",
    ),
    pytest.param(
        lambda t: _in_data_dir(t, "stack.json", "{", ["status", "x"]),
        3,
        "stack.json is not a stack record fte wrote (Invalid JSON",
        id="stack-json-not-json",
    ),
    pytest.param(
        lambda t: _in_data_dir(
            t,
            "stack.json",
            _stack_json(owner_pid="me"),
            ["list"],
        ),
        3,
        "owner_pid: Input should be a valid integer",
        id="stack-json-wrong-type",
    ),
    pytest.param(
        lambda t: _in_data_dir(
            t,
            "stack.json",
            _stack_json(ports={"daprd_grpc": 1}),
            ["research", QUERY, "--detach", "--offline"],
        ),
        3,
        "ports: Value error, missing placement",
        id="stack-json-missing-ports",
    ),
    pytest.param(
        lambda t: _in_data_dir(
            t,
            "stack.json",
            _stack_json(ports={**_ALL_PORTS, "daprd_http": 70000}),
            ["list"],
        ),
        3,
        "ports.daprd_http: Input should be less than or equal to 65535",
        id="stack-json-port-out-of-range",
    ),
    pytest.param(
        lambda t: _in_data_dir(t, "ports.json", "[1]", ["list"]),
        3,
        "ports.json is not a ports record fte wrote (Input should be an object)",
        id="ports-json-not-an-object",
    ),
    pytest.param(
        lambda t: _in_data_dir(t, "ports.json", '{"daprd_grpc": "x"}', ["list"]),
        3,
        "daprd_grpc: Input should be a valid integer",
        id="ports-json-wrong-type",
    ),
    pytest.param(
        lambda t: _in_data_dir(t, "ports.json", '{"daprd_grpc": 0}', ["list"]),
        3,
        "daprd_grpc: Input should be greater than or equal to 1",
        id="ports-json-port-out-of-range",
    ),
    pytest.param(
        lambda t: ["DAPR_GRPC_PORT=abc", "list"],
        3,
        "DAPR_GRPC_PORT must be a port number (1-65535), got 'abc'",
        id="dapr-grpc-port-not-a-number",
    ),
    pytest.param(
        lambda t: ["DAPR_GRPC_PORT=70000", "status", "x"],
        3,
        "DAPR_GRPC_PORT must be a port number (1-65535), got '70000'",
        id="dapr-grpc-port-out-of-range",
    ),
    pytest.param(
        lambda t: ["DAPR_GRPC_PORT=1", "list"],
        3,
        "no Dapr sidecar answers at 127.0.0.1:1",
        id="dapr-grpc-port-nothing-listens",
    ),
    pytest.param(
        lambda t: ["DAPR_HTTP_PORT=x", "DAPR_GRPC_PORT=1", "research", QUERY, "--detach"],
        3,
        "DAPR_HTTP_PORT must be a port number",
        id="dapr-http-port-not-a-number",
    ),
    # Paths, limits and names a hostile or careless user gives (issue 14).
    pytest.param(
        lambda t: ["research", QUERY, "--corpus", _corpus_of_links_out(t)],
        2,
        "1 refused (e.g. leak.txt: resolves to /etc/passwd, outside the corpus",
        id="corpus-of-links-out",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--out", "/proc/fte-reports"],
        2,
        "--out /proc/fte-reports is on /proc, a kernel pseudo-filesystem",
        id="out-under-proc",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--out", "/sys/fte-reports"],
        2,
        "--out /sys/fte-reports is on /sys, a kernel pseudo-filesystem",
        id="out-under-sys",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--out", _symlink_loop(t)],
        2,
        "symlink loop",
        id="out-through-a-symlink-loop",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--id", "taken", "--out", _out_holding(t, "taken.md")],
        2,
        "taken.md already exists; pass --force to overwrite it",
        id="report-exists-before-the-run",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--data-dir", _a_file(t)],
        2,
        "is a file, not a directory",
        id="data-dir-is-a-file",
    ),
    pytest.param(
        lambda t: ["list", "--data-dir", _a_file(t)],
        2,
        "is a file, not a directory",
        id="list-data-dir-is-a-file",
    ),
    pytest.param(
        lambda t: ["status", "x", "--data-dir", "/proc/fte-data"],
        2,
        "--data-dir /proc/fte-data is on /proc, a kernel pseudo-filesystem",
        id="data-dir-under-proc",
    ),
    pytest.param(
        lambda t: ["FTE_APPROVAL_TIMEOUT_S=1e20", "research", QUERY, "--approve-plan"],
        2,
        "FTE_APPROVAL_TIMEOUT_S='1e20' is invalid: expected a finite number greater than 0 "
        "and at most 2592000",
        id="approval-timeout-1e20",
    ),
    pytest.param(
        lambda t: ["FTE_PROGRESS_CHECKIN_INTERVAL_S=1e300", "research", QUERY],
        2,
        "FTE_PROGRESS_CHECKIN_INTERVAL_S='1e300' is invalid",
        id="checkin-interval-1e300",
    ),
    pytest.param(
        lambda t: ['FTE_PRICES={"my-model": [1]}', "research", QUERY],
        2,
        "FTE_PRICES: the price of 'my-model' must be [input, output]",
        id="prices-malformed",
    ),
    pytest.param(
        lambda t: ["FTE_PRICES=cheap", "list"],
        2,
        "FTE_PRICES is not valid JSON",
        id="prices-not-json",
    ),
    pytest.param(
        lambda t: ["purge", "--older-than", "999999999d"],
        2,
        "invalid duration '999999999d': at most 36500d",
        id="purge-older-than-overflow",
    ),
    pytest.param(
        lambda t: ["research", QUERY, "--id", "abc\n"],
        2,
        "invalid task ID 'abc\\n'",
        id="id-with-trailing-newline",
    ),
    pytest.param(
        lambda t: ["approve", "x", *(["--sub-question", "why " * 501] * 3)],
        2,
        "sub-question 1 is 2,003 characters; keep each under 2,000",
        id="sub-question-over-the-query-limit",
    ),
    pytest.param(
        lambda t: ["status", "x.analyst"],
        4,
        "'x.analyst' is the analyst child workflow of run 'x', not a run; use: fte status x",
        id="status-of-a-child-workflow",
    ),
    pytest.param(
        lambda t: ["report", "x.analyst"],
        4,
        "'x.analyst' is the analyst child workflow of run 'x', not a run; use: fte report x",
        id="report-of-a-child-workflow",
    ),
]


def _split_assignments(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading NAME=value items are environment settings, the rest is the command line."""
    env: dict[str, str] = {}
    while args and re.fullmatch(r"[A-Z_]+=.*", args[0]):
        name, _, value = args[0].partition("=")
        env[name] = value
        args = args[1:]
    return env, args


@pytest.mark.parametrize(("argv", "code", "message"), BAD_RESEARCH_INPUTS)
def test_bad_input_is_one_line_with_exit_code(
    tmp_path: Path, argv: object, code: int, message: str
) -> None:
    assert callable(argv)
    env, args = _split_assignments(argv(tmp_path))
    if "--data-dir" not in args:
        args += ["--data-dir", str(tmp_path / "data")]
    result = fte(*args, env=_env(**env))
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "Health check" not in result.stdout  # the SDK's own waiting, a minute of it
    error_lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(error_lines) == 1, result.stderr
    # Input errors are caught before anything is started or stored.
    assert not (tmp_path / "data" / "state.db").exists()


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        pytest.param(["status", "no-such-task"], 4, "no research task", id="unknown-status"),
        pytest.param(["approve", "no-such-task"], 4, "no research task", id="unknown-approve"),
        pytest.param(["report", "no-such-task"], 4, "no research task", id="unknown-report"),
        pytest.param(["cancel", "main-run"], 5, "already ended", id="cancel-finished"),
        pytest.param(["approve", "main-run"], 5, "already ended", id="approve-finished"),
        pytest.param(
            ["approve", "main-run", "--sub-question", "a?", "--sub-question", "b?"],
            2,
            "3 to 16 non-empty sub-questions",
            id="edited-plan-too-short",
        ),  # fmt: skip
        pytest.param(
            ["report", "main-run", "--out", "{out}"], 2, "already exists", id="no-overwrite"
        ),
        pytest.param(
            ["research", QUERY, "--id", "main-run", "--out", "{tmp}"],
            5,
            "already exists",
            id="reused-id",
        ),
        pytest.param(
            ["status", "main-run.analyst"],
            4,
            "'main-run.analyst' is the analyst child workflow of run 'main-run', not a run",
            id="status-of-a-child-workflow",
        ),
        pytest.param(
            ["report", "main-run.analyst"],
            4,
            "'main-run.analyst' is the analyst child workflow of run 'main-run', not a run",
            id="report-of-a-child-workflow",
        ),
    ],
)
def test_bad_requests_against_existing_runs(
    finished_run: FinishedRun, tmp_path: Path, argv: list[str], code: int, message: str
) -> None:
    args = [a.format(out=finished_run.out_dir, tmp=tmp_path) for a in argv]
    result = fte(*args, "--data-dir", str(finished_run.data_dir))
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing already stored was lost.
    assert fte("report", "main-run", "--out", str(tmp_path / "again"), "--data-dir",
               str(finished_run.data_dir)).returncode == 0  # fmt: skip


def test_one_megabyte_query_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Linux caps one argv string at 128 KiB, so a 1 MB query can only come in-process
    # (or from a wrapper script); the CLI entry point must still refuse it cleanly.
    code = main(["research", "x" * 1_000_000, "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2
    assert "1,000,000 characters" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "state.db").exists()


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    result = fte("--debug", "research", "", "--data-dir", str(tmp_path / "data"))
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_missing_runtime_binary_is_exit_3(tmp_path: Path) -> None:
    env = _env(FTE_DAPRD=str(tmp_path / "daprd"))
    result = fte("status", "x", "--data-dir", str(tmp_path / "data"), env=env)
    assert result.returncode == 3
    assert "FTE_DAPRD" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this user cannot write to: by its mode, or (root ignores modes) by a
    read-only mount; skipped where neither is possible."""
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    mounted = False
    if os.access(path, os.W_OK):  # root
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)],
                capture_output=True,
            ).returncode
            == 0
        )
        if not mounted:
            pytest.skip("cannot make a read-only directory for this user")
    try:
        yield path
    finally:
        if mounted:
            subprocess.run(["umount", str(path)], check=True)
        path.chmod(0o755)


def test_read_only_data_dir_is_refused_before_anything_starts(read_only_dir: Path) -> None:
    data_dir = read_only_dir / "data"
    result = fte("research", QUERY, "--data-dir", str(data_dir))
    assert result.returncode == 2, result.stderr
    assert f"--data-dir {data_dir}" in result.stderr and "not writable" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_refused_corpus_files_are_reported_and_list_escapes_control_characters(
    tmp_path: Path,
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("durable-timers.md", "retry-policies-and-backoff.md", "cancellation.md"):
        shutil.copy(next(SAMPLE_CORPUS.rglob(name)), corpus)
    (corpus / "leak.txt").symlink_to("/etc/passwd")
    data_dir, out_dir = tmp_path / "data", tmp_path / "out"
    query = "How do timers\x1b[2J\x1b]0;pwned\x07 fire\r after a restart?"
    result = fte(
        "research", query, "--corpus", str(corpus), "--id", "ctl", "--data-dir", str(data_dir),
        "--out", str(out_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The corpus check names what it will not read, and why.
    refusal = [line for line in result.stderr.splitlines() if "corpus file refused" in line]
    assert len(refusal) == 1 and "leak.txt" in refusal[0], result.stderr
    assert "/etc/passwd" in refusal[0] and "outside the corpus" in refusal[0]
    assert "root:x:0" not in (out_dir / "ctl.json").read_text()

    listing = fte("list", "--data-dir", str(data_dir))
    assert listing.returncode == 0, listing.stderr
    assert "\x1b" not in listing.stdout and "\x07" not in listing.stdout
    assert "\r" not in listing.stdout
    assert "timers\\x1b[2J\\x1b]0;pwned\\x07 fire" in listing.stdout
