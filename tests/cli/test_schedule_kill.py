"""SIGKILL the worker, or the whole stack, while a schedule fires every 3 s.

`fte up` runs the stack and `fte worker` (attached to it) serves the runs and the
schedule, with a loopback mock LLM that counts every request. At moments picked by a
seeded random number of LLM requests (so mid-run, at varying stages), the test kills -9
either the worker alone or everything (worker, launcher, daprd, placement, scheduler)
and starts it again. Afterwards: every fire time from the first fire to the loop's
cursor is accounted for (started, skipped, or counted as missed) and no run ID exists
twice; each run called the planner once, plus at most once more per kill (a call cut
off mid-flight is asked again: activities are at-least-once). With the API token (the
default) or without, a killed worker sometimes leaves daprd 1.18.2 deadlocked; the launcher
restarts it (fte/stall_watch.py) and the test passes through that, saying how often.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from fte.api_tokens import current_token
from fte.client import SETTLED_STATES, ResearchClient
from fte.dapr_stack import RuntimeEndpoint, live_stack
from fte.schedule.client import ScheduleClient
from fte.schedule.contracts import ScheduleStatus
from fte.schedule.timing import parse_utc
from tests.cli.test_cli import _env, fte
from tests.pipeline.conftest import CORPUS, SUB_QUESTIONS, TEST_KEY
from tests.support.processes import LoggedProcess, wait_for
from tests.support.scripted_llm import PLANNER, ScriptedLLM

pytestmark = pytest.mark.engine

NAME = "k9"
EVERY_S = 3
KILLS = 6
MIN_FIRES = 20
RUN_ID = re.compile(rf"^{NAME}-(\d{{8}}T\d{{6}}Z)$")
SEED = 20261126


class Stack:
    """`fte up` plus one attached `fte worker` on a data directory."""

    def __init__(self, data: Path, env: dict[str, str], logs: Path, generation: int) -> None:
        self.data, self.env = data, env
        self.up = LoggedProcess(
            [sys.executable, "-m", "fte", "up", "--data-dir", str(data)],
            logs / f"up-{generation}.log",
            env=env,
        )
        wait_for(lambda: self.up.alive() and live_stack(data) is not None, "the stack", 180)
        self.worker = self.start_worker(logs / f"worker-{generation}.log")

    def start_worker(self, log: Path) -> LoggedProcess:
        worker = LoggedProcess(
            [sys.executable, "-m", "fte", "worker", "--data-dir", str(self.data)], log, env=self.env
        )
        wait_for(
            lambda: worker.alive() and "serving research runs" in worker.log(), "the worker", 90
        )
        return worker

    def endpoint(self) -> RuntimeEndpoint:
        record = live_stack(self.data)
        assert record is not None
        return RuntimeEndpoint(
            host="127.0.0.1",
            grpc_port=record.ports["daprd_grpc"],
            http_port=record.ports["daprd_http"],
            owned=False,
            description="the test's view of the stack",
            api_token=current_token(self.data),
        )

    def kill_everything(self) -> None:
        record = json.loads((self.data / "stack.json").read_text())
        for pid in [self.worker.proc.pid, self.up.proc.pid, *record["pids"].values()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.worker.proc.wait()
        self.up.proc.wait()
        self.worker.stop()
        self.up.stop()

    def stop(self) -> None:
        self.worker.stop()
        self.up.stop()


# The launcher's word when it restarts a daprd caught in its work-stream deadlock
# (fte/stall_watch.py), which a worker killed mid-run sometimes triggers.
MENDED = "deadlock after a worker died"


def status(stack: Stack) -> ScheduleStatus:
    with ResearchClient(stack.endpoint()) as research:
        found = ScheduleClient(research).get(NAME).status
    assert found is not None
    return found


def test_sigkill_worker_and_stack_while_a_schedule_fires(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for file_name, text in CORPUS.items():
        (corpus / file_name).write_text(text)
    data, logs = tmp_path / "data", tmp_path / "logs"
    logs.mkdir()
    llm = ScriptedLLM(SUB_QUESTIONS)
    rng = random.Random(SEED)
    with llm.serve() as llm_url:
        env = _env(
            OPENAI_BASE_URL=llm_url, OPENAI_API_KEY=TEST_KEY, FTE_SCHEDULE_MIN_INTERVAL_S="1"
        )
        stack = Stack(data, env, logs, 0)
        try:
            added = fte(
                "schedule", "add", NAME, "How do durable workflows stay reliable?",
                "--every", f"{EVERY_S}s", "--catchup-window", "1h", "--corpus", str(corpus),
                "--data-dir", str(data), env=env,
            )  # fmt: skip
            assert added.returncode == 0, added.stderr
            for kill in range(KILLS):
                target = sum(llm.calls.values()) + rng.randint(2, 14)
                wait_for(lambda: sum(llm.calls.values()) >= target, "LLM traffic", 90)  # noqa: B023
                if kill % 2 == 0:
                    stack.worker.sigkill()
                    stack.worker.stop()
                    stack.worker = stack.start_worker(logs / f"worker-{kill}-again.log")
                else:
                    stack.kill_everything()
                    stack = Stack(data, env, logs, kill + 1)
            wait_for(lambda: status(stack).fires >= MIN_FIRES, f"{MIN_FIRES} fires", 120)
            paused = fte("schedule", "pause", NAME, "--data-dir", str(data), env=env)
            assert paused.returncode == 0, paused.stderr
            with ResearchClient(stack.endpoint()) as research:
                schedules = ScheduleClient(research)
                wait_for(
                    lambda: all(r.state in SETTLED_STATES for r in schedules.runs(NAME)),
                    "every run to settle",
                    180,
                )
                runs = schedules.runs(NAME)
                final = schedules.get(NAME).status
                states = {r.task_id: r.state for r in runs}
        finally:
            stack.stop()

    assert final is not None and final.cursor is not None
    run_ids = [r.task_id for r in runs]
    fires = "\n".join(
        f"{r.fire_time} {r.run_id} {r.kind} {r.outcome} {r.detail}" for r in final.recent
    )
    assert len(run_ids) == len(set(run_ids)) == final.started, f"runs {run_ids}; fires:\n{fires}"
    fire_times = sorted(parse_utc(RUN_ID.match(r)[1]) for r in run_ids)  # type: ignore[index]
    assert all(t.timestamp() % EVERY_S == 0 for t in fire_times)
    assert set(states.values()) == {"completed"}, states
    # No fire time lost: every one from the first to the cursor is counted exactly once.
    elapsed = (parse_utc(final.cursor) - fire_times[0]) // timedelta(seconds=EVERY_S) + 1
    assert final.fires == elapsed
    assert final.fires == (
        final.started + final.skipped_overlap + final.skipped_missed + final.skipped_paused
    )
    # None ran twice: one planner call per run, plus at most one repeat per kill (or per
    # restart of a deadlocked daprd, which cuts off what was in flight just the same).
    mended = sum(log.read_text().count(MENDED) for log in logs.glob("up-*.log"))
    assert final.started <= llm.calls[PLANNER] <= final.started + KILLS + mended
    print(
        f"\n{final.fires} fires under {KILLS} kill -9s: {final.started} runs, "
        f"{final.skipped_overlap} skipped (overlap), {final.skipped_missed} missed; "
        f"planner calls {llm.calls[PLANNER]}; daprd restarted out of its deadlock {mended}x"
    )
