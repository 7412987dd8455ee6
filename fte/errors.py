"""The error hierarchy: every failure a user can act on is an `FteError`.

The CLI prints `str(error)` as one line and exits with `error.exit_code`;
anything else is a bug and shows a traceback only under `--debug`.
"""

from __future__ import annotations


class FteError(Exception):
    """Base of every error FTE reports to a person."""

    exit_code = 1


class UsageError(FteError):
    """The user asked for something invalid (bad flag, bad path, bad query)."""

    exit_code = 2


class RuntimeSetupError(FteError):
    """The Dapr runtime could not be built, found, started or reached."""

    exit_code = 3


class SidecarBuildError(RuntimeSetupError):
    """Building daprd/placement/scheduler from the Go module failed."""


class DataDirInUseError(RuntimeSetupError):
    """Another launcher owns the data directory and its stack is not usable."""
