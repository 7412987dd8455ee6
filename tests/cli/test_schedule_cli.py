"""`fte schedule` as a user runs it: bad input, and control with no worker running."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fte.cli import main
from fte.dapr_stack import live_stack
from tests.cli.test_cli import SAMPLE_CORPUS, fte
from tests.support.processes import wait_for

pytestmark = pytest.mark.engine

QUERY = "How do durable timers fire after a restart?"
RUN_ID = re.compile(r"^news-\d{8}T\d{6}Z$")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--cron", "0 7 * * FUNDAY"], "invalid cron expression '0 7 * * FUNDAY'"),
        (["--cron", "0 7 * * MON", "--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--every", "30s"], "the minimum is 60s"),
        (["--cron", "* * * * * *"], "the minimum is 60s"),
        (["--every", "soon"], "--every: invalid duration 'soon'"),
        (
            ["--every", "1d", "--start-at", "2027-01-02", "--end-at", "2027-01-01"],
            "--end-at must be after --start-at",
        ),
        (["--every", "1h", "--jitter", "2h"], "is not shorter than the time between two fires"),
        (["--every", "1h", "--catchup-window", "an hour"], "--catchup-window: invalid duration"),
    ],
    ids=[
        "invalid-cron",
        "unknown-zone",
        "interval-under-minimum",
        "cron-under-minimum",
        "bad-duration",
        "end-before-start",
        "jitter-too-long",
        "bad-window",
    ],
)
def test_bad_schedule_input_is_one_line_and_exit_2(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["schedule", "add", "news", QUERY, *flags, "--data-dir", str(tmp_path / "data")]
    assert main([*argv, "--corpus", str(SAMPLE_CORPUS)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fte: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "data" / "state.db").exists()  # refused before anything started


def test_control_works_with_no_worker_running_and_is_idempotent(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    added = fte(
        "schedule",
        "add",
        "news",
        QUERY,
        "--every",
        "1h",
        "--corpus",
        str(SAMPLE_CORPUS),
        "--data-dir",
        data,
        "--offline",
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "news"
    assert "fires while `fte serve`" in added.stderr

    twice = fte("schedule", "add", "news", QUERY, "--every", "1h", "--data-dir", data)
    assert twice.returncode == 2
    assert twice.stderr.splitlines()[-1] == (
        "fte: error: a schedule named 'news' exists already; remove it first "
        "(fte schedule remove news)"
    )
    # The background worker that `add` started exits once idle: schedules do not keep it.
    wait_for(lambda: live_stack(Path(data)) is None, "the background worker to exit", 90)

    for _ in range(2):
        paused = fte("schedule", "pause", "news", "--reason", "holiday", "--data-dir", data)
        assert paused.returncode == 0, paused.stderr
        assert "Schedule news paused; next fire none (paused)" in paused.stderr
    shown = fte("schedule", "show", "news", "--data-dir", data)
    assert "paused:     yes (holiday)" in shown.stdout
    for _ in range(2):
        resumed = fte("schedule", "resume", "news", "--data-dir", data)
        assert resumed.returncode == 0 and "Schedule news active" in resumed.stderr

    triggered = fte("schedule", "trigger", "news", "--data-dir", data)
    assert triggered.returncode == 0, triggered.stderr
    run_id = triggered.stdout.strip()
    assert RUN_ID.match(run_id), triggered.stdout
    watched = fte("watch", run_id, "--data-dir", data)
    assert watched.returncode == 0, watched.stderr

    listed = fte("schedule", "list", "--data-dir", data)
    assert listed.returncode == 0
    assert "news  every 1h  active" in listed.stdout
    assert f"last run:  {run_id} completed" in listed.stdout
    assert "1 started" in listed.stdout and "1 triggered" in listed.stdout
    assert "first completed run: nothing to compare" in listed.stdout

    diff = fte("schedule", "diff", "news", "--data-dir", data)
    assert diff.returncode == 5 and "has 1 completed run(s); a diff needs two" in diff.stderr

    for expected in ("Removed schedule news", "Schedule news was already removed"):
        removed = fte("schedule", "remove", "news", "--data-dir", data)
        assert removed.returncode == 0 and expected in removed.stderr, removed.stderr
    assert run_id in fte("list", "--data-dir", data).stdout  # its runs stay

    for argv in (["pause", "news"], ["show", "nope"], ["trigger", "nope"], ["diff", "nope"]):
        unknown = fte("schedule", *argv, "--data-dir", data)
        assert unknown.returncode == 4, (argv, unknown.stderr)
        # (a control command may first say that it started a background worker)
        assert unknown.stderr.splitlines()[-1].startswith("fte: error: "), unknown.stderr
