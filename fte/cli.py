"""The `fte` command line. `main(argv) -> int` is testable; only `run()` exits."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from fte import __version__
from fte.client import ResearchClient, Snapshot
from fte.contracts import ApprovalDecision
from fte.errors import FteError
from fte.logs import configure_logging
from fte.research import build_config, choose_model, validate_task_id, write_report
from fte.runtime import dapr_runtime
from fte.service import research_worker

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_RUN_STOPPED = 6  # rejected or cancelled
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 run failed, 2 usage error, 3 runtime (Dapr) set-up error, "
    "4 unknown task ID, 5 task not in a state that allows this, 6 run rejected or cancelled, "
    "130 interrupted"
)


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the embedded runtime keeps its state (default: $FTE_DATA_DIR or ./.fte)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fte",
        description="FTE Research: durable multi-agent research on Dapr Workflows.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"fte {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sidecar = commands.add_parser("sidecar", help="build or locate the Dapr runtime binaries")
    sidecar_cmds = sidecar.add_subparsers(dest="sidecar_command", metavar="ACTION", required=True)
    build = sidecar_cmds.add_parser("build", help="build daprd, placement and scheduler from Go")
    build.add_argument("--force", action="store_true", help="rebuild even if cached")
    sidecar_cmds.add_parser("path", help="print where the runtime binaries are")

    up = commands.add_parser(
        "up", help="run the embedded Dapr stack in the foreground until Ctrl-C"
    )
    _add_data_dir(up)

    doctor = commands.add_parser("doctor", help="start the runtime and run one tiny workflow")
    _add_data_dir(doctor)

    research = commands.add_parser(
        "research", help="research a question and write a cited report", epilog=EXIT_CODES_HELP
    )
    research.add_argument("query", help="the research question")
    research.add_argument(
        "--corpus", type=Path, default=Path("examples/corpus"), help="folder of .md/.txt/.html"
    )
    research.add_argument("--id", dest="task_id", help="task ID (default: generated)")
    research.add_argument(
        "--approve-plan", action="store_true", help="wait for `fte approve` before searching"
    )
    research.add_argument("--out", type=Path, default=Path("reports"), help="report folder")
    research.add_argument("--force", action="store_true", help="overwrite an existing report")
    research.add_argument(
        "--detach", action="store_true", help="schedule the run and return its task ID at once"
    )
    research.add_argument("--model", help="model name for every agent (default: $FTE_MODEL)")
    research.add_argument(
        "--offline", action="store_true", help="use the built-in offline model even if a key is set"
    )
    _add_data_dir(research)

    worker = commands.add_parser(
        "worker", help="serve research runs (detached, resumed, scheduled) until stopped"
    )
    worker.add_argument("--offline", action="store_true", help="use the built-in offline model")
    _add_data_dir(worker)

    status = commands.add_parser("status", help="show a run's progress", epilog=EXIT_CODES_HELP)
    status.add_argument("task_id")
    _add_data_dir(status)

    approve = commands.add_parser("approve", help="approve a run's plan")
    approve.add_argument("task_id")
    approve.add_argument("--comment", default="")
    _add_data_dir(approve)

    reject = commands.add_parser("reject", help="reject a run's plan (runs compensation)")
    reject.add_argument("task_id")
    reject.add_argument("--reason", required=True)
    _add_data_dir(reject)

    cancel = commands.add_parser("cancel", help="cancel a run (runs compensation)")
    cancel.add_argument("task_id")
    cancel.add_argument("--reason", default="")
    _add_data_dir(cancel)

    report = commands.add_parser("report", help="write a finished run's report")
    report.add_argument("task_id")
    report.add_argument("--out", type=Path, default=Path("reports"))
    report.add_argument("--force", action="store_true")
    _add_data_dir(report)
    return parser


def _cmd_sidecar(args: argparse.Namespace) -> int:
    from fte import sidecar

    if args.sidecar_command == "build":
        binaries = sidecar.build(force=args.force)
    else:
        binaries = sidecar.find_binaries(build_if_missing=False)
    print(binaries.daprd.parent)
    return EXIT_OK


def _cmd_up(args: argparse.Namespace) -> int:
    from fte.runtime import EmbeddedStack, default_data_dir

    stack = EmbeddedStack(data_dir=args.data_dir or default_data_dir())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with stack as endpoint:
        ports = stack.ports
        print(
            f"Dapr stack up ({endpoint.description}); "
            f"DAPR_GRPC_PORT={endpoint.grpc_port} DAPR_HTTP_PORT={endpoint.http_port}"
            if endpoint.owned
            else f"attached to {endpoint.description}",
            flush=True,
        )
        if ports:
            print(f"placement :{ports['placement']}  scheduler :{ports['scheduler']}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from fte.doctor import run_doctor

    print(json.dumps(run_doctor(args.data_dir), indent=2))
    return EXIT_OK


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _describe(snap: Snapshot) -> str:
    p = snap.progress
    if p is None:
        return f"{snap.task_id}: {snap.runtime_status.lower()}"
    done = sum(q.state == "done" for q in p.sub_questions)
    parts = [f"[{p.stage}]"]
    if p.sub_questions:
        parts.append(f"sub-questions {done}/{len(p.sub_questions)}")
    parts += [f"sources {p.sources_found}", f"tokens {p.usage.total_tokens}"]
    if p.reason:
        parts.append(f"reason: {p.reason}")
    return "  ".join(parts)


def _follow_and_finish(client: ResearchClient, task_id: str, args: argparse.Namespace) -> int:
    last = ""
    try:
        for snap in client.follow(task_id):
            line = _describe(snap)
            if line != last:
                _say(line)
                last = line
            if (
                snap.progress
                and snap.progress.stage == "awaiting_approval"
                and snap.progress.checkins == 0
            ):
                _say(
                    f"  waiting for approval: fte approve {task_id}  |  "
                    f"fte reject {task_id} --reason ..."
                )
    except KeyboardInterrupt:
        _say(
            f"Detached; the run goes on durably. Follow it: fte status {task_id}; "
            f"resume work on it: fte worker; cancel it: fte cancel {task_id}"
        )
        return EXIT_INTERRUPTED
    return _finish(client, snap, args)


def _finish(client: ResearchClient, snap: Snapshot, args: argparse.Namespace) -> int:
    state = snap.end_state
    if state == "completed":
        report = client.report(snap.task_id)
        markdown, document = write_report(report, args.out, force=args.force)
        print(markdown)
        _say(f"Report: {markdown} (full structure: {document})")
        return EXIT_OK
    reason = (snap.progress.reason if snap.progress else None) or snap.failure or "no reason given"
    _say(f"fte: run {snap.task_id} {state}: {reason}")
    return EXIT_RUN_FAILED if state == "failed" else EXIT_RUN_STOPPED


def _cmd_research(args: argparse.Namespace) -> int:
    choice = choose_model(model=args.model, offline=args.offline)
    task_id = validate_task_id(args.task_id)
    config = build_config(
        query=args.query, corpus=args.corpus, models=choice.models, approve_plan=args.approve_plan
    )
    if choice.offline:
        _say(
            "OFFLINE MODEL: no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL); using the "
            "built-in extractive model. Reports say so in their header."
        )
    with dapr_runtime(args.data_dir) as endpoint, ResearchClient(endpoint) as client:
        if args.detach:
            client.start(config, task_id)
            print(task_id)
            _say(
                f"Scheduled {task_id}. It runs while `fte worker` "
                "(or another fte command) serves it."
            )
            return EXIT_OK
        with research_worker(
            endpoint,
            llm_config=choice.config,
            http_client=choice.http_client,
            offline=choice.offline,
        ):
            client.start(config, task_id)
            _say(f"Task {task_id} started ({endpoint.description})")
            return _follow_and_finish(client, task_id, args)


def _cmd_worker(args: argparse.Namespace) -> int:
    choice = choose_model(model=None, offline=args.offline)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with (
        dapr_runtime(args.data_dir) as endpoint,
        research_worker(
            endpoint,
            llm_config=choice.config,
            http_client=choice.http_client,
            offline=choice.offline,
        ),
    ):
        _say(f"fte worker serving research runs on {endpoint.description}; Ctrl-C to stop")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _with_client(args: argparse.Namespace) -> contextlib.AbstractContextManager[ResearchClient]:
    @contextlib.contextmanager
    def session() -> Iterator[ResearchClient]:
        with dapr_runtime(args.data_dir) as endpoint, ResearchClient(endpoint) as client:
            yield client

    return session()


def _cmd_status(args: argparse.Namespace) -> int:
    with _with_client(args) as client:
        snap = client.snapshot(args.task_id)
        print(_describe(snap))
        if snap.progress:
            for q in snap.progress.sub_questions:
                print(f"  {q.id} [{q.state}] {q.text} ({q.sources} sources)")
    return EXIT_OK


def _cmd_approve(args: argparse.Namespace) -> int:
    with _with_client(args) as client:
        client.approve(args.task_id, ApprovalDecision(approved=True, comment=args.comment))
    _say(f"Approved the plan of {args.task_id}")
    return EXIT_OK


def _cmd_reject(args: argparse.Namespace) -> int:
    with _with_client(args) as client:
        client.approve(args.task_id, ApprovalDecision(approved=False, comment=args.reason))
    _say(f"Rejected the plan of {args.task_id}; its partial artifacts will be deleted")
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    with _with_client(args) as client:
        client.cancel(args.task_id, args.reason)
    _say(f"Cancelling {args.task_id}; its partial artifacts will be deleted")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    with _with_client(args) as client:
        report = client.report(args.task_id)
    markdown, _ = write_report(report, args.out, force=args.force)
    print(markdown)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.debug)
    handlers = {
        "sidecar": _cmd_sidecar,
        "up": _cmd_up,
        "doctor": _cmd_doctor,
        "research": _cmd_research,
        "worker": _cmd_worker,
        "status": _cmd_status,
        "approve": _cmd_approve,
        "reject": _cmd_reject,
        "cancel": _cmd_cancel,
        "report": _cmd_report,
    }
    try:
        return handlers[args.command](args)
    except FteError as exc:
        if args.debug:
            raise
        print(f"fte: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("fte: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run() -> None:
    sys.exit(main())
