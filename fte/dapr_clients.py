"""The one place that makes clients of a Dapr sidecar: state/pub-sub and workflow.

For an external sidecar (`dapr run`, Kubernetes) the endpoint carries no ports and
the SDK reads DAPR_GRPC_ENDPOINT / DAPR_GRPC_PORT / DAPR_API_TOKEN itself.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
import urllib.error
import urllib.request

import dapr.ext.workflow as wf
import structlog
from dapr.clients import DaprClient
from dapr.clients.http.helpers import get_api_url
from dapr.conf import settings
from dapr.ext.workflow.logger import LoggerOptions

from fte.api_tokens import sdk_token
from fte.dapr_stack import RuntimeEndpoint
from fte.errors import RuntimeSetupError

log = structlog.get_logger(__name__)

# How long a client waits for the sidecar's HTTP API before saying which setting is wrong
# (the SDK alone waits DAPR_HEALTH_TIMEOUT, a minute, printing a line a second on stdout).
HTTP_API_WAIT_S = 10.0


def dapr_client(endpoint: RuntimeEndpoint) -> DaprClient:
    """A client of the sidecar's state and pub/sub APIs."""
    if endpoint.http_port is not None:
        # DaprClient() blocks on the sidecar's HTTP health endpoint, which it finds
        # through this process-wide setting (default 3500), not through `address`.
        setattr(settings, "DAPR_HTTP_PORT", endpoint.http_port)  # noqa: B010 - untyped settings
    _wait_for_http_api()
    address = endpoint.grpc_address
    # The SDK prints its own health-check failures on stdout, which is our output channel
    # (report paths, task IDs); they go to the debug log instead.
    sdk_prints = io.StringIO()
    try:
        with contextlib.redirect_stdout(sdk_prints), sdk_token(endpoint.api_token):
            return DaprClient(address=address) if address else DaprClient()
    finally:
        for line in sdk_prints.getvalue().splitlines():
            log.debug("dapr sdk", message=line)


def _wait_for_http_api() -> None:
    url = f"{get_api_url()}/healthz/outbound"
    deadline = time.monotonic() + HTTP_API_WAIT_S
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - sidecar URL
                if 200 <= int(response.status) < 300:
                    return
                reason = f"HTTP {response.status}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if time.monotonic() >= deadline:
            raise RuntimeSetupError(
                f"the Dapr sidecar's HTTP API does not answer at {url} ({reason}); set "
                "DAPR_HTTP_PORT (or DAPR_HTTP_ENDPOINT) to the sidecar's HTTP address"
            )
        time.sleep(0.2)


def close_dapr_client(client: DaprClient) -> None:
    """Close once, for good.

    DaprClient.close() keeps its channel attribute, so `__del__` closes it again
    during interpreter shutdown, when grpc's module globals are already gone, and
    prints an `Exception ignored` traceback at the end of every command.
    """
    client.close()
    client._channel = None


def workflow_client(endpoint: RuntimeEndpoint) -> wf.DaprWorkflowClient:
    """A client that schedules, queries, raises events on and purges workflow instances."""
    port = str(endpoint.grpc_port) if endpoint.grpc_port is not None else None
    # The SDK logs every miss ("instance not found") and read race at WARNING/ERROR
    # on stderr before raising; callers handle both, so only its criticals show. Its INFO
    # lines would still reach the JSON log, one per wait (`ResearchClient.follow`).
    logging.getLogger("durabletask-client").setLevel(logging.WARNING)
    with sdk_token(endpoint.api_token):
        return wf.DaprWorkflowClient(
            host=endpoint.host, port=port, logger_options=LoggerOptions(log_level="CRITICAL")
        )
