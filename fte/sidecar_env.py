"""The DAPR_* environment, checked before the Dapr SDK is imported.

The SDK reads its settings from the environment when it is first imported
(`dapr.conf.settings`) and converts them with `int(...)`: `DAPR_GRPC_PORT=abc` is a
traceback from deep inside an import, before any of our code runs. The command's entry point
(`fte.entry`) calls `problem()` first, so a bad value is one line and exit code 3. This module
imports nothing from the SDK for that reason.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# The SDK's integer settings (dapr/conf/global_settings.py); the ports also need a range.
_PORTS = ("DAPR_GRPC_PORT", "DAPR_HTTP_PORT", "HTTP_APP_PORT", "GRPC_APP_PORT")
_COUNTS = (
    "DAPR_HEALTH_TIMEOUT",
    "DAPR_API_MAX_RETRIES",
    "DAPR_HTTP_TIMEOUT_SECONDS",
    "DAPR_GRPC_MAX_INBOUND_MESSAGE_SIZE_BYTES",
)
MAX_PORT = 65535


def problem(environ: Mapping[str, str] | None = None) -> str | None:
    """A one-line description of the first invalid DAPR_* setting, or None."""
    env = os.environ if environ is None else environ
    for name in (*_PORTS, *_COUNTS):
        value = env.get(name)
        if not value:  # the SDK treats an empty value as unset
            continue
        try:
            number = int(value)
        except ValueError:
            expected = f"a port number (1-{MAX_PORT})" if name in _PORTS else "a whole number"
            return f"{name} must be {expected}, got {value!r}"
        if name in _PORTS and not 1 <= number <= MAX_PORT:
            return f"{name} must be a port number (1-{MAX_PORT}), got {value!r}"
        if name not in _PORTS and number < 0:
            return f"{name} must not be negative, got {value!r}"
    return None


def port(name: str, environ: Mapping[str, str] | None = None) -> int | None:
    """A port setting's value (None if unset); `problem()` has vouched for it."""
    value = (os.environ if environ is None else environ).get(name)
    return int(value) if value else None
