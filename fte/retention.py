"""The retention policy: finished runs older than `FTE_RETENTION_DAYS` are purged by the worker.

Dapr's own state retention (components/local/config.yaml) drops a finished workflow's
history after a week, but leaves the run's artifacts and index entry, and SQLite keeps the
freed pages. A long-lived worker (`fte serve`, `fte worker`, a background worker) therefore
sweeps once at start and then hourly: the same purge as `fte purge --older-than`, then the
state store is compacted (`fte.stored_runs.reclaim_space`) so the space goes back to the disk.
Each sweep also rotates the logs past their limit (`fte.log_files`), retention on or off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog

from fte import log_files, stored_runs
from fte.errors import FteError
from fte.intervals import Interval

if TYPE_CHECKING:
    from fte.client import ResearchClient

log = structlog.get_logger(__name__)

SWEEP_EVERY_S = 3600.0


class Retention:
    """Purges runs finished more than `keep_days` ago, at most once per `every_s`."""

    def __init__(
        self,
        data_dir: Path,
        *,
        keep_days: float,
        embedded: bool,
        every_s: float = SWEEP_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._data_dir = data_dir
        self._keep = timedelta(days=keep_days) if keep_days > 0 else None
        self._embedded = embedded
        self._sweep = Interval(every_s, at_once=True, clock=clock)  # the first call sweeps

    def sweep_if_due(self, client: ResearchClient) -> list[str]:
        """Purge what is due now; a failure is logged and tried again at the next sweep."""
        if not self._sweep.due():
            return []
        # A worker on an external sidecar has no stack owner to rotate its log.
        log_files.rotate(self._data_dir / "logs")
        if self._keep is None:
            return []
        try:
            purged = client.purge_older_than(self._keep)
            if purged and self._embedded:
                before, after = stored_runs.purge_leftovers(self._data_dir, purged)
                log.info("retention.compacted", bytes_before=before, bytes_after=after)
        except (FteError, grpc.RpcError) as exc:
            log.warning("retention.sweep_failed", error=str(exc))
            return []
        if purged:
            log.info("retention.purged", runs=purged, older_than_days=self._keep.days)
        return purged
