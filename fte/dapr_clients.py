"""The one place that makes clients of a Dapr sidecar: state/pub-sub and workflow.

For an external sidecar (`dapr run`, Kubernetes) the endpoint carries no ports and
the SDK reads DAPR_GRPC_ENDPOINT / DAPR_GRPC_PORT / DAPR_API_TOKEN itself.
"""

from __future__ import annotations

import dapr.ext.workflow as wf
from dapr.clients import DaprClient
from dapr.conf import settings
from dapr.ext.workflow.logger import LoggerOptions

from fte.dapr_stack import RuntimeEndpoint


def dapr_client(endpoint: RuntimeEndpoint) -> DaprClient:
    """A client of the sidecar's state and pub/sub APIs."""
    if endpoint.http_port is not None:
        # DaprClient() blocks on the sidecar's HTTP health endpoint, which it finds
        # through this process-wide setting (default 3500), not through `address`.
        setattr(settings, "DAPR_HTTP_PORT", endpoint.http_port)  # noqa: B010 - untyped settings
    address = endpoint.grpc_address
    return DaprClient(address=address) if address else DaprClient()


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
    # on stderr before raising; callers handle both, so only its criticals show.
    return wf.DaprWorkflowClient(
        host=endpoint.host, port=port, logger_options=LoggerOptions(log_level="CRITICAL")
    )
