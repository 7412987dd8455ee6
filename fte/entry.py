"""The `fte` command's entry point: check what must be checked before the SDK is imported.

`fte.cli` imports the Dapr SDK, which parses the DAPR_* environment on import; a bad value
must be one line and exit code 3 (runtime set-up error), not an import traceback.
"""

from __future__ import annotations

import sys

from fte import sidecar_env
from fte.errors import RuntimeSetupError


def run() -> None:
    problem = sidecar_env.problem()
    if problem is not None:
        print(f"fte: error: {problem}", file=sys.stderr)
        sys.exit(RuntimeSetupError.exit_code)
    from fte.cli import run as run_cli

    run_cli()
