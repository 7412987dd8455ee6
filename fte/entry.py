"""The `fte` command's entry point: check what must be checked before the SDK is imported.

`fte.cli` imports the Dapr SDK, which parses the DAPR_* environment on import; a bad value
must be one line and exit code 3 (runtime set-up error), not an import traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from typing import NoReturn

from fte import sidecar_env
from fte.errors import RuntimeSetupError


def run() -> None:
    # The launcher forks to start (and restart) runtime processes, which exec at once; grpc's
    # fork handlers are for children that go on using grpc, and otherwise print a line on
    # stderr for every fork made while a channel is busy. Read when grpc is first imported.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    problem = sidecar_env.problem()
    if problem is not None:
        print(f"fte: error: {problem}", file=sys.stderr)
        sys.exit(RuntimeSetupError.exit_code)
    from fte.cli import main

    leave(main())


def leave(code: int) -> NoReturn:
    """End the process with `code`, skipping the interpreter's teardown of its heap.

    After a command that loaded the pipeline (the Dapr SDK, pydantic contracts, the openai
    types), tearing the interpreter down freed its objects one by one for 0.2-0.25 s, all
    CPU and no system call (strace of `fte research`) — a tenth of a whole research run's
    overhead, on every command. What the teardown does that matters is done here first,
    in its order: non-daemon threads are joined and thread pools shut down
    (`threading._shutdown`), `atexit` handlers run, logs and the standard streams are
    flushed. Where those interpreter hooks are missing, it exits the ordinary way.
    """
    shutdown_threads = getattr(threading, "_shutdown", None)
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if shutdown_threads is None or run_exit_handlers is None:
        sys.exit(code)
    shutdown_threads()
    run_exit_handlers()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing left to say there
            stream.flush()
    os._exit(code)
