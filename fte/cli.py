"""The `fte` command line. `main(argv) -> int` is testable; only `run()` exits.

Each command imports what it needs inside its handler: the SDK, grpc, openai and the
pipeline take about a second to import, which `fte --help` or a status query of nothing
should not pay. Keep new module-level imports to the standard library and light modules.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fte import __version__
from fte.errors import FteError, RuntimeSetupError, UnknownTaskError, UsageError
from fte.limits import (
    DEFAULT_SUB_QUESTIONS,
    MAX_SCHEDULE_NAME,
    MAX_SUB_QUESTIONS,
    MIN_SUB_QUESTIONS,
    OVERLAP_POLICIES,
)

if TYPE_CHECKING:
    from fte.client import ResearchClient, Snapshot
    from fte.config import FteSettings
    from fte.contracts import Progress
    from fte.schedule.client import ScheduleClient
    from fte.schedule.contracts import ScheduleStatus

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_RUN_STOPPED = 6  # rejected or cancelled
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 ok, 1 run failed, 2 usage error, 3 runtime (Dapr) set-up error, "
    "4 unknown task ID, 5 task not in a state that allows this, 6 run rejected or cancelled, "
    "130 interrupted"
)


def _add_research_limits(parser: argparse.ArgumentParser) -> None:
    """How wide and deep a run goes, and its budget (settings: max_sub_questions, depth,
    budget_usd, max_tokens)."""
    parser.add_argument(
        "--max-sub-questions",
        type=int,
        help=f"the most sub-questions the plan may have, {MIN_SUB_QUESTIONS}-{MAX_SUB_QUESTIONS} "
        f"(default: {DEFAULT_SUB_QUESTIONS})",
    )
    parser.add_argument(
        "--depth", type=int, help="gap-filling rounds after the first pass, 0-5 (default: 1)"
    )
    parser.add_argument(
        "--budget-usd", type=float, help="stop researching before the estimated cost passes this"
    )
    parser.add_argument(
        "--max-tokens", type=int, help="stop researching before model tokens pass this"
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
    up.add_argument(
        "--replicas",
        type=int,
        help="run N sidecars, each with an fte worker, sharing one placement and scheduler "
        "(needs --state)",
    )
    up.add_argument(
        "--state", metavar="URL", help="actor state store: postgres://... or redis://..."
    )
    up.add_argument("--pubsub", metavar="URL", help="pub/sub: redis://... (default: in-memory)")
    up.add_argument(
        "--offline", action="store_true", help="replicas' workers use the offline model"
    )

    config = commands.add_parser("config", help="show the effective configuration")
    config_cmds = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_cmds.add_parser("show", help="print settings, where each came from, secrets masked")

    doctor = commands.add_parser("doctor", help="start the runtime and run one tiny workflow")
    _add_data_dir(doctor)
    doctor.add_argument(
        "--resources-path",
        type=Path,
        help="the external sidecar's components: check actorStateStore and tracing there",
    )

    research = commands.add_parser(
        "research", help="research a question and write a cited report", epilog=EXIT_CODES_HELP
    )
    research.add_argument("query", help="the research question")
    research.add_argument(
        "--corpus", type=Path, help="folder of .md/.txt/.html/.pdf (default: examples/corpus)"
    )
    research.add_argument(
        "--sources", help="where to search, comma-separated: local, web (default: local)"
    )
    research.add_argument("--id", dest="task_id", help="task ID (default: generated)")
    research.add_argument(
        "--approve-plan", action="store_true", help="wait for `fte approve` before searching"
    )
    research.add_argument("--out", type=Path, help="report folder (default: reports)")
    research.add_argument("--force", action="store_true", help="overwrite an existing report")
    research.add_argument(
        "--detach", action="store_true", help="schedule the run and return its task ID at once"
    )
    research.add_argument("--model", help="model name for every agent (default: $FTE_MODEL)")
    research.add_argument(
        "--offline", action="store_true", help="use the built-in offline model even if a key is set"
    )
    _add_research_limits(research)
    _add_data_dir(research)

    search = commands.add_parser(
        "search", help="show the passages the retriever finds for a query, ranked"
    )
    search.add_argument("query", help="what to search for")
    search.add_argument("--corpus", type=Path, help="folder of documents (default: settings)")
    search.add_argument(
        "--sources", help="comma-separated: local, web (default: settings, else local)"
    )
    search.add_argument("-k", type=int, default=8, help="how many passages (default: 8)")
    search.add_argument("--json", action="store_true", help="print a JSON list")
    _add_data_dir(search)

    worker = commands.add_parser(
        "worker", help="serve research runs (detached or interrupted ones too) until stopped"
    )
    worker.add_argument("--offline", action="store_true", help="use the built-in offline model")
    worker.add_argument(
        "--until-idle", action="store_true", help="exit once no run is left unfinished"
    )
    _add_data_dir(worker)

    status = commands.add_parser("status", help="show a run's progress", epilog=EXIT_CODES_HELP)
    status.add_argument("task_id")
    _add_data_dir(status)

    watch = commands.add_parser(
        "watch", help="follow a run live until it ends", epilog=EXIT_CODES_HELP
    )
    watch.add_argument("task_id")
    _add_data_dir(watch)

    listing = commands.add_parser("list", help="list runs with state, age and query")
    _add_data_dir(listing)

    purge = commands.add_parser("purge", help="delete finished runs and their artifacts")
    target = purge.add_mutually_exclusive_group(required=True)
    target.add_argument("task_id", nargs="?")
    target.add_argument("--older-than", type=_duration, help="e.g. 30m, 12h, 7d")
    _add_data_dir(purge)

    approve = commands.add_parser("approve", help="approve a run's plan")
    approve.add_argument("task_id")
    approve.add_argument("--comment", default="")
    approve.add_argument(
        "--sub-question",
        dest="sub_questions",
        action="append",
        metavar="TEXT",
        help=(
            f"replace the plan: give {MIN_SUB_QUESTIONS}-{MAX_SUB_QUESTIONS} times, "
            "one sub-question each"
        ),
    )
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
    report.add_argument("--format", choices=("md", "json", "html"), default="md")
    report.add_argument("--out", type=Path, help="report folder (default: reports)")
    report.add_argument("--force", action="store_true")
    _add_data_dir(report)

    serve = commands.add_parser(
        "serve",
        help="long-running: the embedded stack and a worker serving runs and schedules "
        "until SIGTERM or Ctrl-C",
    )
    serve.add_argument("--offline", action="store_true", help="use the built-in offline model")
    _add_data_dir(serve)
    ui = commands.add_parser(
        "ui",
        help="a local web console: runs, approvals, schedules, evals (prints its URL with a token)",
    )
    ui.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one)")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback)"
    )
    ui.add_argument(
        "--tls-cert",
        type=Path,
        metavar="PEM",
        help="serve HTTPS with this certificate (chain) file; without it, plain HTTP",
    )
    ui.add_argument(
        "--tls-key", type=Path, metavar="PEM", help="the certificate's private key, if not in it"
    )
    _add_data_dir(ui)
    _add_schedule_parsers(commands)
    _add_eval_parser(commands)
    return parser


def _add_eval_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="run the evaluation suites and write a scorecard (from a checkout)",
        epilog="suites: retrieval, integrity, e2e, failures, judge (default: all of them)",
    )
    evaluate.add_argument("suites", nargs="*", metavar="SUITE", help="suites to run")
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="record the e2e (and judge) cassettes from the configured model server "
        "(the offline model when none is configured)",
    )
    evaluate.add_argument(
        "--compare", type=Path, metavar="BASELINE.json", help="fail when a metric falls below it"
    )
    evaluate.add_argument("--out", type=Path, default=Path("reports/eval"), help="scorecard folder")


def _add_schedule_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schedule = commands.add_parser(
        "schedule",
        help="recurring research: add, list, show, pause, resume, trigger, remove, diff",
        epilog=EXIT_CODES_HELP,
    )
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="ask a question again and again; fires while `fte serve` runs",
        epilog=EXIT_CODES_HELP,
    )
    add.add_argument("name", help=f"schedule name (1-{MAX_SCHEDULE_NAME} letters, digits, - _)")
    add.add_argument("query", help="the research question")
    cadence = add.add_mutually_exclusive_group(required=True)
    cadence.add_argument("--every", help="interval: 90s, 30m, 6h, 1d, 1h30m (epoch-aligned)")
    cadence.add_argument("--cron", help='cron expression, e.g. "0 7 * * MON"')
    add.add_argument("--tz", default="UTC", help="IANA time zone of --cron and local times")
    add.add_argument("--corpus", type=Path, help="folder of .md/.txt/.html/.pdf")
    add.add_argument("--start-at", help="ISO-8601; no fire before (local to --tz if no offset)")
    add.add_argument("--end-at", help="ISO-8601; no fire after")
    add.add_argument("--overlap", choices=OVERLAP_POLICIES, default="skip")
    add.add_argument(
        "--catchup-window",
        default="1h",
        help="fires missed while nothing ran are made up if this recent (default 1h)",
    )
    add.add_argument("--jitter", default="", help="spread fires by up to this, e.g. 5m")
    add.add_argument("--approve-plan", action="store_true", help="each run waits for `fte approve`")
    add.add_argument("--model", help="model name for every agent (default: $FTE_MODEL)")
    add.add_argument("--offline", action="store_true", help="use the built-in offline model")
    _add_research_limits(add)
    _add_data_dir(add)

    listing = actions.add_parser("list", help="schedules, next fire, last run, last change")
    _add_data_dir(listing)
    show = actions.add_parser("show", help="a schedule's spec, counts, recent fires and runs")
    show.add_argument("name")
    show.add_argument("--runs", type=int, default=10, help="how many recent runs (default 10)")
    _add_data_dir(show)
    pause = actions.add_parser("pause", help="stop firing until resumed (idempotent)")
    pause.add_argument("name")
    pause.add_argument("--reason", default="")
    _add_data_dir(pause)
    for action, text in (
        ("resume", "fire again; fires passed while paused are skipped (idempotent)"),
        ("trigger", "fire now, through the overlap policy"),
        ("remove", "end the schedule and delete its history; its runs stay (idempotent)"),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name")
        _add_data_dir(sub)
    diff = actions.add_parser(
        "diff", help="what changed between two completed runs (default: the last two)"
    )
    diff.add_argument("name")
    diff.add_argument("runs", nargs="*", metavar="RUN", help="RUN_A RUN_B (older, newer)")
    _add_data_dir(diff)


def _cmd_sidecar(args: argparse.Namespace) -> int:
    from fte import dapr_build

    if args.sidecar_command == "build":
        binaries = dapr_build.build(force=args.force)
    else:
        binaries = dapr_build.find_binaries(build_if_missing=False)
    print(binaries.daprd.parent)
    return EXIT_OK


def _cmd_up(args: argparse.Namespace) -> int:
    if args.replicas is not None or args.settings.state_url or args.settings.pubsub_url:
        from fte.replicas import cmd_up

        return cmd_up(args, say=_say)
    from fte.dapr_stack import EmbeddedStack

    stack = EmbeddedStack(data_dir=args.settings.data_dir)
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
            while not stop.wait(1.0):
                problem = endpoint.problem()  # what the launcher could not mend
                if problem is not None:
                    raise RuntimeSetupError(problem)
        except KeyboardInterrupt:
            pass
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from fte.doctor import run_doctor

    print(json.dumps(run_doctor(args.settings.data_dir, args.resources_path), indent=2))
    return EXIT_OK


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _follow_and_finish(client: ResearchClient, task_id: str, args: argparse.Namespace) -> int:
    from fte import progress_view

    try:
        snap = progress_view.show(_announce_gate(client.follow(task_id)), cost=_cost)
    except KeyboardInterrupt:
        _say(
            f"Detached; the run goes on durably. Follow it: fte watch {task_id}; "
            f"keep it running: fte worker; cancel it: fte cancel {task_id}"
        )
        return EXIT_INTERRUPTED
    return _finish(client, snap, args)


def _announce_gate(snapshots: Iterator[Snapshot]) -> Iterator[Snapshot]:
    """Tell the user once how to answer the approval gate."""
    told = False
    for snap in snapshots:
        if not told and snap.progress and snap.progress.stage == "awaiting_approval":
            _say(
                f"Waiting for approval of the plan: fte approve {snap.task_id}  |  "
                f"fte reject {snap.task_id} --reason ..."
            )
            told = True
        yield snap


def _cost(progress: Progress) -> str:
    from fte.pricing import estimate_run_cost, format_cost

    total, _ = estimate_run_cost(progress.models, progress.usage_by_agent)
    return "$0" if total == 0 else format_cost(total)


def _finish(client: ResearchClient, snap: Snapshot, args: argparse.Namespace) -> int:
    from fte.research import write_report

    state = snap.end_state
    if state == "completed":
        report = client.report(snap.task_id)
        markdown, document = write_report(report, args.settings.out_dir, force=args.force)
        print(markdown)
        _say(f"Report: {markdown} (full structure: {document}; HTML: fte report --format html)")
        if snap.progress is not None and snap.progress.reason:
            _say(f"Note: {snap.progress.reason}")  # e.g. the budget ended the research
        return EXIT_OK
    reason = (snap.progress.reason if snap.progress else None) or snap.failure or "no reason given"
    _say(f"fte: run {snap.task_id} {state}: {reason}")
    return EXIT_RUN_FAILED if state == "failed" else EXIT_RUN_STOPPED


def _cmd_research(args: argparse.Namespace) -> int:
    from fte.research import (
        build_config,
        choose_model,
        report_paths,
        validate_out_dir,
        validate_task_id,
    )

    settings = args.settings
    choice = choose_model(settings)
    task_id = validate_task_id(args.task_id)
    if args.task_id is None:
        validate_out_dir(settings.out_dir)  # a new generated ID has no report yet
    else:
        report_paths(settings.out_dir, task_id, force=args.force)
    config = build_config(settings, query=args.query, choice=choice, approve_plan=args.approve_plan)
    if choice.offline:
        _say(
            "OFFLINE MODEL: no LLM configured (set OPENAI_API_KEY or OPENAI_BASE_URL); using the "
            "built-in extractive model. Reports say so in their header."
        )
    from fte.dapr_stack import BackgroundRuntime, dapr_runtime

    if args.detach:
        from fte.client import ResearchClient

        _ensure_background_worker(settings.data_dir, offline=choice.offline)
        with dapr_runtime(settings.data_dir) as endpoint, ResearchClient(endpoint) as client:
            client.start(config, task_id)
            print(task_id)
            _say(
                f"Scheduled {task_id}. It runs while `fte worker` "
                "(or another fte command) serves it."
            )
            return EXIT_OK
    # The sidecar starts while the pipeline and the model client are imported (~0.1 s less).
    with BackgroundRuntime(settings.data_dir) as runtime:
        from fte.client import ResearchClient
        from fte.wiring import research_worker

        if not choice.offline:
            from fte.llm import prepare_client_library

            prepare_client_library()
        endpoint = runtime.endpoint()
        with (
            ResearchClient(endpoint) as client,
            research_worker(
                endpoint,
                llm_config=choice.config,
                http_client=choice.http_client,
                offline=choice.offline,
            ) as worker,
        ):
            client.start(config, task_id)
            _say(f"Task {task_id} started ({endpoint.description})")
            code = _follow_and_finish(client, task_id, args)
            if code != EXIT_INTERRUPTED:  # the run ended: no result of its is on its way
                worker.settle(task_id)
            return code


def _ensure_background_worker(data_dir: Path, *, offline: bool) -> None:
    """Start `fte worker --until-idle` in the background unless something already serves.

    The sidecar only accepts a new workflow once a worker has registered the
    workflow types, and a detached run needs someone to execute it after this
    command returns; the background worker does both and exits when idle. A running
    stack is not enough: `fte up` runs one without a worker (`fte.serving`).
    """
    from fte.serving import ensure_worker

    ensure_worker(data_dir, offline=offline, say=_say)


_IDLE_EXIT_S = 10.0


def _cmd_worker(args: argparse.Namespace) -> int:
    """`fte worker [--until-idle]` and `fte serve` (a worker that never idles out).

    Schedules do not keep `--until-idle` alive: they are eternal, so a worker started in
    the background by a command would never exit. They fire while `fte serve` or a plain
    `fte worker` runs; a fire missed meanwhile is made up within its catch-up window.
    """
    import grpc

    from fte import stored_runs
    from fte.client import SETTLED_STATES, ResearchClient
    from fte.dapr_stack import dapr_runtime
    from fte.research import choose_model
    from fte.retention import Retention
    from fte.schedule.liveness import OverdueSchedules
    from fte.serving import worker_claim, worker_needed_by_a_command
    from fte.wiring import research_worker

    serving = args.command == "serve"
    settings = args.settings
    retention = Retention(
        settings.data_dir,
        keep_days=settings.retention_days,
        embedded=stored_runs.embedded(external_store=settings.state_url is not None),
    )
    overdue = OverdueSchedules()
    until_idle = getattr(args, "until_idle", False)
    choice = choose_model(args.settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if serving:
        signal.signal(signal.SIGINT, lambda *_: stop.set())
    with (
        # One worker per data directory; one started on purpose replaces a background one.
        worker_claim(args.settings.data_dir, replace_background=not until_idle),
        dapr_runtime(args.settings.data_dir) as endpoint,
        research_worker(
            endpoint,
            llm_config=choice.config,
            http_client=choice.http_client,
            offline=choice.offline,
        ),
        ResearchClient(endpoint) as client,
    ):
        if serving:
            _say(
                f"fte serve: serving research runs and schedules on {endpoint.description}; "
                "SIGTERM or Ctrl-C stops it"
            )
        else:
            _say(f"fte worker serving research runs on {endpoint.description}; Ctrl-C to stop")
        idle_since = time.monotonic()
        try:
            while not stop.wait(2.0):
                client.check_runtime()  # what the launcher could not mend ends the worker
                retention.sweep_if_due(client)
                overdue.check_if_due(client)
                if not until_idle:
                    continue
                try:
                    busy = worker_needed_by_a_command(args.settings.data_dir) or any(
                        run.state not in SETTLED_STATES for run in client.runs()
                    )
                except (RuntimeSetupError, grpc.RpcError):
                    continue  # the launcher is restarting the sidecar; ask again next round
                if busy:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > _IDLE_EXIT_S:
                    _say("fte worker: no unfinished runs; exiting")
                    break
        except KeyboardInterrupt:
            pass
    if serving:
        _say("fte serve: stopped")
    return EXIT_OK


def _with_client(
    args: argparse.Namespace, *, serve: bool = False
) -> contextlib.AbstractContextManager[ResearchClient]:
    """A client of the runtime serving the data directory.

    `serve`: the command changes a run (an event, a purge) or waits for one to
    progress. The sidecar only routes to workflow instances while a worker has
    registered the workflow types, and the run must then go on (compensation
    after a cancel, the rest of the pipeline after an approval), so a worker is
    made sure of first.
    """
    from fte.client import ResearchClient
    from fte.dapr_stack import dapr_runtime
    from fte.serving import worker_needed

    @contextlib.contextmanager
    def session() -> Iterator[ResearchClient]:
        data_dir = args.settings.data_dir
        with contextlib.ExitStack() as stack:
            if serve:
                # The lease comes first, so the worker cannot idle out before the command
                # has done what it needs the worker for.
                stack.enter_context(worker_needed(data_dir))
                _ensure_background_worker(data_dir, offline=args.settings.offline)
            endpoint = stack.enter_context(dapr_runtime(data_dir))
            yield stack.enter_context(ResearchClient(endpoint))

    return session()


def _refuse_unknown_when_idle(args: argparse.Namespace) -> None:
    """Refuse an unknown task ID without starting the runtime, when none serves the directory.

    The run index alone says whether a run exists (`fte.stored_runs`); a known run, or a
    directory whose runtime runs, is asked as before.
    """
    from fte.stored_runs import idle_index

    settings = args.settings
    runs = idle_index(settings.data_dir, external_store=settings.state_url is not None)
    if runs is not None and args.task_id not in runs:
        raise UnknownTaskError.no_run(args.task_id)


def _cmd_status(args: argparse.Namespace) -> int:
    from fte import progress_view

    _refuse_unknown_when_idle(args)
    with _with_client(args) as client:
        snap = client.snapshot(args.task_id)
        print(progress_view.summary_line(snap, _cost))
        if snap.progress:
            for q in snap.progress.sub_questions:
                print(
                    f"  {q.id} [{q.state}] {progress_view.printable(q.text)} ({q.sources} sources)"
                )
    return EXIT_OK


def _cmd_approve(args: argparse.Namespace) -> int:
    from fte import run_control

    # Validated before anything is started.
    decision = run_control.approval(
        approved=True, comment=args.comment, sub_questions=args.sub_questions
    )
    with _with_client(args, serve=True) as client:
        _say(run_control.approve(client, args.task_id, decision))
    return EXIT_OK


def _cmd_reject(args: argparse.Namespace) -> int:
    from fte import run_control

    with _with_client(args, serve=True) as client:
        _say(run_control.reject(client, args.task_id, args.reason))
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    from fte import run_control

    with _with_client(args, serve=True) as client:
        _say(run_control.cancel(client, args.task_id, args.reason))
    return EXIT_OK


def _cmd_ui(args: argparse.Namespace) -> int:
    from fte.ui.server import run_ui

    run_ui(
        args.settings,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        say=_say,
        show_url=lambda url: print(url, flush=True),
    )
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from fte.evals.command import run_eval
    from fte.logs import configure_logging

    if not args.debug:  # the failure suite provokes retries and errors on purpose
        configure_logging(level="critical", secrets=args.settings.secret_values())
    return run_eval(
        args.suites,
        out=args.out,
        baseline=args.compare,
        record=args.record,
        settings=args.settings,
        say=_say,
    )


def _cmd_report(args: argparse.Namespace) -> int:
    from fte.research import report_paths, write_report

    report_paths(args.settings.out_dir, args.task_id, force=args.force, formats=(args.format,))
    _refuse_unknown_when_idle(args)
    with _with_client(args) as client:
        report = client.report(args.task_id)
    paths = write_report(report, args.settings.out_dir, force=args.force, formats=(args.format,))
    print(paths[0])
    return EXIT_OK


def _cmd_watch(args: argparse.Namespace) -> int:
    from fte import progress_view

    _refuse_unknown_when_idle(args)  # before a background worker is started for nothing
    with _with_client(args, serve=True) as client:
        client.snapshot(args.task_id)  # unknown IDs fail before the live view starts
        try:
            snap = progress_view.show(_announce_gate(client.follow(args.task_id)), cost=_cost)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    state = snap.end_state
    if state == "completed":
        _say(f"Completed: fte report {args.task_id} writes the report")
        if snap.progress is not None and snap.progress.reason:
            _say(f"Note: {snap.progress.reason}")  # e.g. the budget ended the research
        return EXIT_OK
    return EXIT_RUN_FAILED if state == "failed" else EXIT_RUN_STOPPED


def _age(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cmd_list(args: argparse.Namespace) -> int:
    from fte import progress_view
    from fte.stored_runs import idle_index

    settings = args.settings
    if idle_index(settings.data_dir, external_store=settings.state_url is not None) == {}:
        runs = []  # an idle directory with no run: nothing to start the runtime for
    else:
        with _with_client(args) as client:
            runs = client.runs()
    if not runs:
        _say('No runs yet: fte research "your question" starts one')
        return EXIT_OK
    print(f"{'TASK ID':<32} {'STATE':<18} {'AGE':>5}  QUERY")
    for run in runs:
        query = progress_view.printable(run.query)  # a query may hold terminal escapes
        query = query if len(query) <= 60 else query[:57] + "..."
        print(f"{run.task_id:<32} {run.state:<18} {_age(run.created_at):>5}  {query}")
    return EXIT_OK


def _cmd_purge(args: argparse.Namespace) -> int:
    from fte import stored_runs

    settings = args.settings
    freed = ""
    with _with_client(args, serve=True) as client:
        if args.task_id:
            client.purge(args.task_id)
            purged = [args.task_id]
        else:
            purged = client.purge_older_than(args.older_than)
        if purged and stored_runs.embedded(external_store=settings.state_url is not None):
            before, after = stored_runs.purge_leftovers(settings.data_dir, purged)
            freed = f"; state store {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB"
    for task_id in purged:
        print(task_id)
    _say(f"Purged {len(purged)} run(s){freed}")
    return EXIT_OK


# -- schedules ------------------------------------------------------------------


def _cmd_schedule(args: argparse.Namespace) -> int:
    handlers = {
        "add": _schedule_add,
        "list": _schedule_list,
        "show": _schedule_show,
        "pause": _schedule_control,
        "resume": _schedule_control,
        "trigger": _schedule_control,
        "remove": _schedule_remove,
        "diff": _schedule_diff,
    }
    return handlers[args.schedule_command](args)


def _schedule_add(args: argparse.Namespace) -> int:
    from fte.research import build_config, choose_model
    from fte.schedule.client import ScheduleClient, make_spec
    from fte.schedule.contracts import format_next_fire

    settings = args.settings
    choice = choose_model(settings)
    config = build_config(settings, query=args.query, choice=choice, approve_plan=args.approve_plan)
    # Validated before anything starts: bad input is a usage error, not a broken schedule.
    spec = make_spec(
        name=args.name,
        run=config,
        every=args.every,
        cron=args.cron,
        tz=args.tz,
        start_at=args.start_at,
        end_at=args.end_at,
        overlap=args.overlap,
        catchup_window=args.catchup_window,
        jitter=args.jitter,
        min_interval_s=settings.schedule_min_interval_s,
    )
    with _with_client(args, serve=True) as client:
        schedules = ScheduleClient(client)
        schedules.add(spec)
        view = schedules.wait_started(spec.name)
    print(spec.name)
    next_fire = format_next_fire(view.status, spec.tz)
    _say(
        f"Schedule {spec.name} added: {spec.describe()}, next fire {next_fire}. "
        "It fires while `fte serve` (or `fte worker`) runs on this data directory; "
        "fires missed meanwhile are made up within the catch-up window."
    )
    return EXIT_OK


def _run_state(client: ResearchClient, task_id: str | None) -> str:
    if task_id is None:
        return "-"
    try:
        snap = client.snapshot(task_id)
    except FteError:
        return "missing"
    return snap.end_state or (snap.progress.stage if snap.progress else "pending")


def _last_change(client: ResearchClient, schedules: ScheduleClient, name: str) -> str:
    for run in schedules.runs(name):
        if run.state != "completed":
            continue
        changes = client.report(run.task_id).get("changes")
        return str(changes["summary"]) if changes else "first completed run: nothing to compare"
    return "no completed run yet"


def _schedule_list(args: argparse.Namespace) -> int:
    from fte.schedule.client import ScheduleClient
    from fte.schedule.contracts import format_next_fire

    with _with_client(args) as client:
        schedules = ScheduleClient(client)
        views = schedules.all()
        if not views:
            _say('No schedules: fte schedule add NAME "question" --every 1d starts one')
            return EXIT_OK
        for view in views:
            st = view.status
            state = "paused" if st and st.paused else "active"
            if st and st.paused and st.pause_reason:
                state += f" ({st.pause_reason})"
            print(f"{view.name}  {view.spec.describe()}  {state}")
            print(f"  next fire: {format_next_fire(st, view.spec.tz)}")
            if st is not None:
                print(f"  last run:  {st.last_run or '-'} {_run_state(client, st.last_run)}")
                print(f"  fires: {_fire_counts(st)}")
            print(f"  last change: {_last_change(client, schedules, view.name)}")
    return EXIT_OK


def _fire_counts(st: ScheduleStatus) -> str:
    failed = f", {st.failed} failed" if st.failed else ""
    return (
        f"{st.fires} ({st.started} started, {st.skipped_overlap} skipped (overlap), "
        f"{st.skipped_missed} missed, {st.skipped_paused} while paused{failed}; "
        f"{st.triggers} triggered)"
    )


def _schedule_show(args: argparse.Namespace) -> int:
    from fte.schedule.client import ScheduleClient
    from fte.schedule.contracts import format_next_fire, format_seconds

    with _with_client(args) as client:
        schedules = ScheduleClient(client)
        view = schedules.get(args.name)
        spec, st = view.spec, view.status
        print(f"schedule:   {spec.name} ({view.runtime_status.lower()})")
        print(f"cadence:    {spec.describe()}")
        print(f"window:     {spec.start_at or 'now'} .. {spec.end_at or 'open-ended'}")
        print(
            f"policy:     overlap {spec.overlap}, catch-up window "
            f"{format_seconds(spec.catchup_window_s)}, jitter "
            f"{format_seconds(spec.jitter_s) if spec.jitter_s else 'none'}"
        )
        print(f"question:   {spec.run.query}")
        print(f"corpus:     {spec.run.corpus_dir}")
        print(f"model:      {spec.run.endpoint.describe()}")
        print(f"next fire:  {format_next_fire(st, spec.tz)}")
        if st is not None:
            if st.paused:
                print(f"paused:     yes{f' ({st.pause_reason})' if st.pause_reason else ''}")
            if st.buffered:
                print(f"buffered:   the fire of {st.buffered} waits for the previous run")
            print(f"fires:      {_fire_counts(st)}")
            print("recent fires:")
            for record in st.recent[-args.runs :]:
                detail = f" - {record.detail}" if record.detail else ""
                print(
                    f"  {record.fire_time}  {record.kind:<9} {record.outcome:<8} "
                    f"{record.run_id}{detail}"
                )
        print("runs:")
        out_dir = args.settings.out_dir
        runs = schedules.runs(args.name)[: args.runs]
        width = max((len(run.task_id) for run in runs), default=0)
        for run in runs:
            report = out_dir / f"{run.task_id}.md"
            where = str(report) if report.exists() else f"fte report {run.task_id}"
            where = where if run.state == "completed" else ""
            print(f"  {run.task_id:<{width}}  {run.state:<16} {where}".rstrip())
    return EXIT_OK


def _schedule_control(args: argparse.Namespace) -> int:
    from fte.schedule.client import ScheduleClient
    from fte.schedule.contracts import format_next_fire

    action = args.schedule_command
    with _with_client(args, serve=True) as client:
        schedules = ScheduleClient(client)
        request_id = schedules.control(args.name, action, getattr(args, "reason", ""))
        view = schedules.wait_applied(args.name, request_id)
    st = view.status
    if action == "trigger" and st is not None:
        fired = [r for r in st.recent if r.kind == "trigger"]
        if fired:
            record = fired[-1]
            if record.outcome == "started":  # stdout names a run only when there is one
                print(record.run_id)
            detail = f" ({record.detail})" if record.detail else ""
            _say(f"Triggered {args.name}: run {record.run_id} {record.outcome}{detail}")
            return EXIT_OK
    _say(
        f"Schedule {args.name} {'paused' if st and st.paused else 'active'}; "
        f"next fire {format_next_fire(st, view.spec.tz)}"
    )
    return EXIT_OK


def _schedule_remove(args: argparse.Namespace) -> int:
    from fte.schedule.client import ScheduleClient

    with _with_client(args, serve=True) as client:
        removed = ScheduleClient(client).remove(args.name)
    _say(
        f"Removed schedule {args.name}; its runs stay (fte list, fte purge)"
        if removed
        else f"Schedule {args.name} was already removed"
    )
    return EXIT_OK


def _schedule_diff(args: argparse.Namespace) -> int:
    from fte.changes import render_markdown as render_changes
    from fte.schedule.client import ScheduleClient

    if len(args.runs) not in (0, 2):
        raise UsageError("fte schedule diff NAME [RUN_A RUN_B]: give two runs or none")
    run_a, run_b = (args.runs[0], args.runs[1]) if args.runs else (None, None)
    with _with_client(args) as client:
        changes = ScheduleClient(client).diff(args.name, run_a, run_b)
    print("\n".join(render_changes(changes)).rstrip())
    return EXIT_OK


# Older than this means older than any run; past it, dates stop being representable.
_MAX_DURATION_DAYS = 36500


def _duration(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: use e.g. 30m, 12h or 7d")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    if int(match[1]) * seconds > _MAX_DURATION_DAYS * 86400:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: at most {_MAX_DURATION_DAYS}d (100 years)"
        )
    return timedelta(seconds=int(match[1]) * seconds)


def _cmd_search(args: argparse.Namespace) -> int:
    from fte import search

    return search.run(
        args.query,
        corpus=args.settings.corpus,
        sources=args.settings.sources,
        k=args.k,
        json_output=args.json,
    )


def _cmd_config(args: argparse.Namespace) -> int:
    from fte.config import show as show_settings

    print(show_settings(args.settings))
    return EXIT_OK


def _preflight(args: argparse.Namespace) -> None:
    """Input every command may be given, checked before it starts, stores or logs anything."""
    from fte.pricing import load_prices
    from fte.research import validate_data_dir, validate_run_ref

    load_prices()  # a bad FTE_PRICES would otherwise surface mid-run, in the cost column
    if hasattr(args, "data_dir"):
        validate_data_dir(args.settings.data_dir)
        from fte.index_dir import use_index_dir

        # Every command of a data directory (the CLI and its workers) shares its corpus indexes.
        use_index_dir(args.settings.data_dir / "index")
    if args.command != "research" and getattr(args, "task_id", None) is not None:
        validate_run_ref(args.task_id, args.command)


def _settings(args: argparse.Namespace) -> FteSettings:
    """Flags > environment > fte.toml > defaults; only flags the user gave count."""
    from fte.config import load_settings

    flags: dict[str, object] = {
        "data_dir": getattr(args, "data_dir", None),
        "out_dir": getattr(args, "out", None),
        "corpus": getattr(args, "corpus", None),
        "sources": getattr(args, "sources", None),
        "model": getattr(args, "model", None),
        "offline": True if getattr(args, "offline", False) else None,
        "depth": getattr(args, "depth", None),
        "max_sub_questions": getattr(args, "max_sub_questions", None),
        "budget_usd": getattr(args, "budget_usd", None),
        "max_tokens": getattr(args, "max_tokens", None),
        "state_url": getattr(args, "state", None),
        "pubsub_url": getattr(args, "pubsub", None),
    }
    return load_settings(flags)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and --version exit here, before any heavy import
    from fte import log_files
    from fte.logs import configure_logging

    configure_logging(verbose=args.debug)
    try:
        args.settings = _settings(args)
        _preflight(args)
    except FteError as exc:
        print(f"fte: error: {exc}", file=sys.stderr)
        return exc.exit_code
    settings = args.settings
    # Only commands that run the pipeline write the JSON log (creating the data dir).
    json_file = settings.log_file if args.command in ("research", "worker", "serve") else None
    configure_logging(
        verbose=args.debug,
        level=settings.log_level,
        json_file=json_file,
        secrets=settings.secret_values(),
    )
    log_files.configure(settings.log_limits)
    handlers = {
        "sidecar": _cmd_sidecar,
        "config": _cmd_config,
        "up": _cmd_up,
        "doctor": _cmd_doctor,
        "research": _cmd_research,
        "search": _cmd_search,
        "worker": _cmd_worker,
        "status": _cmd_status,
        "approve": _cmd_approve,
        "reject": _cmd_reject,
        "cancel": _cmd_cancel,
        "report": _cmd_report,
        "watch": _cmd_watch,
        "list": _cmd_list,
        "purge": _cmd_purge,
        "serve": _cmd_worker,
        "schedule": _cmd_schedule,
        "eval": _cmd_eval,
        "ui": _cmd_ui,
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
