"""The `fte` command's entry point: check what must be checked before the SDK is imported.

`fte.cli` imports the Dapr SDK, which parses the DAPR_* environment on import; a bad value
must be one line and exit code 3 (runtime set-up error), not an import traceback.
"""

from __future__ import annotations

import os
import sys

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
    from fte.cli import run as run_cli

    run_cli()
