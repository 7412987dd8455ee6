"""A running worker wakes schedules whose durable timer did not fire (ScheduleClient.wake_overdue).

The check reads every schedule's status, so it runs every `CHECK_EVERY_S`, not on each turn
of the worker's loop; a failure (the sidecar restarting) is logged and tried next time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
import structlog

from fte.errors import FteError
from fte.intervals import Interval

if TYPE_CHECKING:
    from fte.client import ResearchClient

log = structlog.get_logger(__name__)

CHECK_EVERY_S = 10.0


class OverdueSchedules:
    def __init__(self, every_s: float = CHECK_EVERY_S) -> None:
        self._check = Interval(every_s)

    def check_if_due(self, client: ResearchClient) -> list[str]:
        """The schedules woken, if a check was due; a failure is logged, not raised."""
        if not self._check.due():
            return []
        from fte.schedule.client import ScheduleClient

        try:
            return ScheduleClient(client).wake_overdue(datetime.now(UTC))
        except (FteError, grpc.RpcError) as exc:
            log.warning("schedule check failed", error=str(exc))
            return []
