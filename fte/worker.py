"""The workflow worker: registers workflows/activities and serves the sidecar's work stream."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import dapr.ext.workflow as wf
import structlog
from dapr.ext.workflow.logger import LoggerOptions

from fte.errors import RuntimeSetupError

log = structlog.get_logger(__name__)

Registrar = Callable[[wf.WorkflowRuntime], None]


class WorkflowWorker:
    """A started `WorkflowRuntime` bound to one sidecar.

    host/port None means: use the DAPR_GRPC_ENDPOINT / DAPR_GRPC_PORT settings
    (an external sidecar under `dapr run` or Kubernetes).
    """

    def __init__(
        self,
        *,
        host: str | None,
        port: int | None,
        register: Registrar,
        ready_timeout_s: float = 30.0,
        max_concurrent_activities: int | None = None,
    ) -> None:
        self._runtime = wf.WorkflowRuntime(
            host=host,
            port=str(port) if port is not None else None,
            # The SDK logs every registration and reconnect at INFO to stderr;
            # keep the terminal for our own progress output.
            logger_options=LoggerOptions(log_level="WARNING"),
            worker_ready_timeout=ready_timeout_s,
            maximum_concurrent_activity_work_items=max_concurrent_activities,
        )
        register(self._runtime)
        self._started = False

    def start(self) -> None:
        try:
            self._runtime.start()
        except Exception as exc:  # the SDK raises bare RuntimeError/grpc errors
            raise RuntimeSetupError(
                f"the workflow worker could not connect to the Dapr sidecar: {exc}"
            ) from exc
        self._started = True
        log.debug("workflow worker ready")

    def stop(self) -> None:
        if self._started:
            self._runtime.shutdown()
            self._started = False

    def __enter__(self) -> WorkflowWorker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
