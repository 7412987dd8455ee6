"""Three replicas on PostgreSQL lose two of themselves to SIGKILL; all 30 runs complete.

`fte up --replicas 3 --state postgresql://...` runs as a process, exactly as a user starts
it: one placement, one scheduler, three daprd sidecars with the same app ID, each with its
own `fte worker` process. The test submits 30 runs through the third sidecar, SIGKILLs the
first replica's worker and sidecar mid-way and the second's later, and checks that every run
completes with one report, that no LLM request was made more than twice (the mock counts
each distinct request), and how the runs' agent calls were spread over the workers.

Known upstream failures (_ENGINE_STALLS): now and then the engine leaves a run waiting for
ever after the failover — a sidecar that took over a workflow discards an activity's
completion as stale (dapr/durabletask-go#125; the fix is in durabletask-go versions the module
proxy here does not serve), or a parent's turn creating a child and the finished child
reporting back to the parent wait on each other. The test then xfails naming the runs and
the sidecar's log line; any other unfinished run fails it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest

from fte.agents import planner
from fte.api_tokens import read_tokens
from fte.client import ResearchClient, Snapshot
from fte.contracts import ModelEndpoint, RunConfig
from fte.dapr_stack import RuntimeEndpoint
from fte.replicas import RECORD
from tests.dapr_stack.test_api_token import _grpc_metadata_call
from tests.dapr_stack.test_loopback import _bound_sockets, _socket_inodes
from tests.pipeline.conftest import CORPUS, SUB_QUESTIONS, TEST_KEY
from tests.support.processes import LoggedProcess, wait_for
from tests.support.scripted_llm import ALL_AGENTS, PLANNER, WRITER, ScriptedLLM
from tests.support.servers import Postgres

pytestmark = pytest.mark.engine

RUNS = 30
_CASE = re.compile(r"case (\d\d)")


def _tagged_planner(inputs: planner.PlannerInput) -> dict[str, Any]:
    """The scripted plan, with the run's case number in every sub-question: then every
    request of a run differs from every request of another, and a repeat is a real repeat."""
    match = _CASE.search(inputs.query)
    assert match, inputs.query
    tag = match.group(1)
    return {
        "sub_questions": [f"{q} (case {tag})" for q in SUB_QUESTIONS],
        "rationale": "scripted plan",
    }


def _corpus(root: Path, case: int) -> Path:
    """The shared test corpus with the case number in each document's first sentence."""
    directory = root / f"corpus-{case:02d}"
    directory.mkdir(parents=True)
    for name, text in CORPUS.items():
        if "\n\n" in text:
            head, body = text.split("\n\n", 1)
            text = f"{head}\n\nIn case {case:02d}, {body[0].lower()}{body[1:]}"
        else:
            text = f"In case {case:02d}, {text[0].lower()}{text[1:]}"
        (directory / name).write_text(text)
    return directory


def _kill(pid: int | None) -> None:
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def _task_ids_served(worker_data_dir: Path) -> set[str]:
    """The runs whose agent calls this worker made, from its JSON log."""
    log = worker_data_dir / "logs" / "fte.jsonl"
    served = set()
    for line in log.read_text().splitlines() if log.exists() else []:
        with_event = json.loads(line)
        if with_event.get("event") == "activity.start" and with_event.get("task_id"):
            served.add(with_event["task_id"])
    return served


SETTLE_S = 60.0


def _wait(research: ResearchClient, task_id: str, settle: float) -> Snapshot:
    try:
        return research.wait(task_id, timeout_s=max(1.0, settle - time.monotonic()))
    except TimeoutError:
        return research.snapshot(task_id)


# What the sidecars log when the engine itself leaves a run waiting for ever after a
# failover (upstream: nothing in fte's code runs between these actors).
_ENGINE_STALLS = {
    # A (child) workflow discarded an activity's completion as stale and waits for it:
    # dapr/durabletask-go#125, fixed in releases newer than the one daprd 1.18.2 builds with.
    "discarding resolution event": "completion discarded (dapr/durabletask-go#125)",
    # After the failover, a parent's turn waits on CreateWorkflowInstance of a child while the
    # child, already finished, waits to deliver its completion to that parent (AddWorkflowEvent):
    # a lock cycle between the two actors with no timeout, logged when the sidecar stops. No
    # upstream issue found; related: dapr/dapr#9258 (crash-replay of child creation).
    "failed to invoke method 'CreateWorkflowInstance'": "parent/child stall after failover",
}


def _engine_stalls(logs: Path, stuck: list[str]) -> dict[str, str]:
    """The stuck runs for which a sidecar logged one of the engine's own stalls."""
    found = {}
    for log in sorted(logs.glob("daprd-*.log")):
        for line in log.read_text(errors="replace").splitlines():
            for signature, name in _ENGINE_STALLS.items():
                if signature not in line:
                    continue
                for task_id in stuck:
                    if f"Workflow actor '{task_id}" in line:
                        found[task_id] = f"{name}: {line.split('msg=', 1)[-1][:160]}"
    return found


def _diagnostics(launcher: str, logs: Path) -> str:
    parts = [f"fte up said:\n{launcher[-3000:]}"]
    for log in sorted(logs.glob("*.log")):
        lines = log.read_text(errors="replace").splitlines()
        problems = [line[:300] for line in lines if "level=error" in line or "fatal" in line]
        parts.append(f"{log.name}: last lines {lines[-3:]}, errors {problems[-5:]}")
    return "\n".join(parts)


def _assert_loopback_only(record: dict[str, Any]) -> None:
    """Placement, scheduler and every sidecar listen on loopback only (read from /proc)."""
    sockets = _bound_sockets()
    pids = [record["placement"]["pid"], record["scheduler"]["pid"]]
    pids += [r["daprd_pid"] for r in record["replicas"]]
    for pid in pids:
        bound = [sockets[i] for i in _socket_inodes(pid) if i in sockets]
        assert bound, pid
        exposed = [b for b in bound if not ipaddress.ip_address(b[1]).is_loopback]
        assert exposed == [], exposed


def test_three_replicas_complete_thirty_runs_after_two_are_killed(
    postgres: Postgres, tmp_path: Path
) -> None:
    dsn = postgres.new_database()
    database = dsn.split("/")[3].split("?")[0]
    data_dir = tmp_path / "data"
    llm = ScriptedLLM(SUB_QUESTIONS)
    llm.handlers[PLANNER] = _tagged_planner
    with llm.serve() as llm_url:
        # The DSN (with its password) through the environment, as the README advises.
        env = {
            **os.environ,
            "OPENAI_BASE_URL": llm_url,
            "OPENAI_API_KEY": TEST_KEY,
            "FTE_STATE_URL": dsn,
        }
        for name in ("DAPR_GRPC_ENDPOINT", "DAPR_GRPC_PORT", "DAPR_HTTP_PORT", "DAPR_API_TOKEN"):
            env.pop(name, None)
        up = LoggedProcess(
            [sys.executable, "-m", "fte", "up", "--replicas", "3", "--data-dir", str(data_dir)],
            tmp_path / "up.log",
            env=env,
        )  # fmt: skip
        try:
            wait_for(
                lambda: up.alive() and "submit runs" in up.log(), "three replicas", timeout=180
            )
            record = json.loads((data_dir / RECORD).read_text())
            replicas = record["replicas"]
            assert len(replicas) == 3 and len({r["daprd_pid"] for r in replicas}) == 3
            survivor = replicas[2]
            # Workers get no database credentials; only the sidecars do.
            for replica in replicas:
                environ = Path(f"/proc/{replica['worker_pid']}/environ").read_bytes()
                assert postgres.password.encode() not in environ
                daprd = Path(f"/proc/{replica['daprd_pid']}/environ").read_bytes()
                assert postgres.password.encode() in daprd
                # Each sidecar serves only clients with the data directory's token.
                assert (
                    _grpc_metadata_call(replica["grpc_port"], None)
                    == grpc.StatusCode.UNAUTHENTICATED
                )
            _assert_loopback_only(record)
            endpoint = RuntimeEndpoint(
                host="127.0.0.1",
                grpc_port=survivor["grpc_port"],
                http_port=survivor["http_port"],
                owned=False,
                description="replica 3",
                api_token=read_tokens(data_dir).dapr,
            )
            task_ids = [f"replica-run-{case:02d}" for case in range(RUNS)]
            with ResearchClient(endpoint) as research:
                for case, task_id in enumerate(task_ids):
                    research.start(
                        RunConfig(
                            query=f"How do durable workflows stay reliable in case {case:02d}?",
                            corpus_dir=str(_corpus(tmp_path, case)),
                            endpoint=ModelEndpoint(base_url=llm_url),
                        ),
                        task_id,
                    )

                def reports(at_least: int) -> bool:
                    return up.alive() and llm.calls[WRITER] >= at_least

                wait_for(lambda: reports(RUNS // 3), "a third of the runs", timeout=240)
                served_before_kill = {
                    r["index"]: _task_ids_served(Path(r["worker_data_dir"])) for r in replicas
                }
                _kill(replicas[0]["worker_pid"])
                _kill(replicas[0]["daprd_pid"])
                wait_for(lambda: reports(2 * RUNS // 3), "two thirds of the runs", timeout=240)
                _kill(replicas[1]["worker_pid"])
                _kill(replicas[1]["daprd_pid"])

                # The survivor finishes what is left in seconds; a run still going after
                # SETTLE_S is stuck (see _engine_stalls).
                settle = time.monotonic() + SETTLE_S
                snaps = {t: _wait(research, t, settle) for t in task_ids}
                done = [t for t in task_ids if snaps[t].end_state == "completed"]
                report_ids = {t: research.report(t)["task_id"] for t in done}
            log = up.log()
        except Exception as exc:
            # What the launcher and the sidecars said is what explains a failure here.
            up.stop()
            raise AssertionError(_diagnostics(up.log(), data_dir / "logs")) from exc
        finally:
            up.stop()
    # SIGTERM stopped every process the launcher started.
    assert up.proc.returncode == 0 and "fte up: stopped" in up.log(), up.log()
    started = [record["placement"]["pid"], record["scheduler"]["pid"]] + [
        pid for r in replicas for pid in (r["daprd_pid"], r["worker_pid"])
    ]
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()]

    failed = {t: (s.end_state, s.failure) for t, s in snaps.items() if s.finished}
    failed = {t: state for t, state in failed.items() if state[0] != "completed"}
    stuck = sorted(t for t, s in snaps.items() if not s.finished)
    assert postgres.password not in log
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert postgres.password.encode() not in path.read_bytes(), path
    assert not failed, failed
    assert report_ids == {t: t for t in done}
    # Two replicas were lost, said so on the launcher's terminal, and the third served on.
    assert "replica 1 is gone" in log and "replica 2 is gone" in log, log
    assert "1 of 3 replicas serve" in log, log

    # One stored report per run: the key is deterministic, so a repeated finalize overwrites.
    keys = postgres.psql(
        "SELECT key FROM state WHERE key LIKE '%artifact:replica-run-%';", database
    )
    stored = Counter(m.group(1) for m in re.finditer(r"artifact:(replica-run-\d\d):report\b", keys))
    assert stored == dict.fromkeys(done, 1)

    # Every LLM request of every run reached the model at least once and at most twice: a
    # request cut off by a kill is made again once, finished ones never.
    requests: Counter[tuple[str, str]] = Counter()
    for agent in ALL_AGENTS:
        for prompt in llm.prompts[agent]:
            assert _CASE.search(prompt), f"{agent} request names no case: requests not distinct"
            requests[(agent, prompt)] += 1
    repeated = {key: n for key, n in requests.items() if n > 1}
    assert max(requests.values()) <= 2, {k[0]: n for k, n in repeated.items()}
    assert llm.calls[PLANNER] - len(repeated) <= RUNS
    written = {m.group(1) for a, p in requests for m in [_CASE.search(p)] if m and a == WRITER}
    assert {f"replica-run-{case}" for case in written} >= set(done)

    served = {r["index"]: _task_ids_served(Path(r["worker_data_dir"])) for r in replicas}
    print(
        "\nruns with agent calls on each worker (before the first kill -> at the end): "
        + ", ".join(
            f"worker {i}: {len(served_before_kill[i])} -> {len(served[i])}" for i in sorted(served)
        )
        + f"; LLM requests {sum(requests.values())}, distinct {len(requests)}, "
        f"repeated once {len(repeated)}"
    )
    # Work was spread: before any kill, more than one worker ran agent calls.
    assert sum(bool(s) for s in served_before_kill.values()) >= 2, served_before_kill
    assert set().union(*served.values()) == set(task_ids)

    if stuck:
        evidence = _engine_stalls(data_dir / "logs", stuck)
        assert set(evidence) == set(stuck), f"runs stuck for another reason: {stuck}"
        # The only way this test does not pass: an upstream engine bug, named precisely.
        pytest.xfail(f"{len(stuck)} of {RUNS} runs left waiting by the engine: {evidence}")
