"""The `fte` command line. `main(argv) -> int` is testable; only `run()` exits."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from fte import __version__
from fte.errors import FteError
from fte.logs import configure_logging

EXIT_OK = 0
EXIT_INTERRUPTED = 130


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
        epilog=(
            "exit codes: 0 ok, 1 run failed, 2 usage error, 3 runtime (Dapr) set-up error, "
            "130 interrupted"
        ),
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(verbose=args.debug)
    handlers = {"sidecar": _cmd_sidecar, "up": _cmd_up, "doctor": _cmd_doctor}
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
