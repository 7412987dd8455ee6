"""Notice daprd 1.18.2's work-stream deadlock, so the launcher can restart daprd.

When the last worker's work-item stream closes (a worker SIGKILLed mid-run), daprd
unregisters the workflow actor types while holding its registration lock
(pkg/runtime/wfengine/wfengine.go, the GetWorkItems disconnect callback). Unregistering
waits for every active workflow actor to deactivate. If one of them is mid-execution — its
work item handed to the engine but not yet sent on a stream (durabletask-go
backend/executor.go, ExecuteWorkflow blocks on the work-item queue) — it holds its actor
lock until a stream takes that item. The next worker's stream is accepted ("work item
stream established" is logged first) but its connect callback waits for the same
registration lock before it reads the queue. Nothing moves again: every reminder fails with
"actor type ... not registered" until daprd restarts. README "daprd's work-stream
deadlock" gives the four waits as a goroutine dump of a stalled daprd showed them.

No client behaviour avoids it (the worker was killed; the new stream is blocked inside
daprd) and no daprd setting turns the unregistering off. What can be seen from outside:
daprd logged that a stream was established after the last one ended, yet its metadata API
counts no connected worker. A healthy daprd counts the stream within milliseconds (the
connect callback only stores actor factories), so seeing that for `PATIENCE_S` is the stall
or a daprd whose actor runtime never became ready (the callback waits for it), which cannot
run workflows either. Restarting daprd loses nothing: workflow state and reminders are durable,
and the worker reconnects to the same ports. The stream lines are daprd's info level, which
the launcher runs it at; at a quieter level the watch sees no stream and never acts.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

PATIENCE_S = 10.0
_METADATA_TIMEOUT_S = 2.0

# daprd's own log lines (durabletask-go backend/executor.go, GetWorkItems). A stream ends
# with "closed" when the worker goes, "encountered an error" when a send to it fails, and
# "unable to establish" when its connect callback refused it; only these three end one.
_OPENED = b"work item stream established"
_ENDED = (
    b"work item stream closed",
    b"encountered an error while sending work item",
    b"unable to establish work item stream",
)


class StallWatch:
    """Reads one daprd's log as it grows and asks daprd's count of streams when one hangs.

    One per daprd process, from `offset`, where that process's lines begin (the log is
    appended to across restarts); `stalled` on every supervision round reads only the new
    bytes, and asks `connected_workers` only once a stream has waited `patience_s`.
    """

    def __init__(
        self,
        log_path: Path,
        connected_workers: Callable[[], int | None],
        *,
        offset: int = 0,
        patience_s: float = PATIENCE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log_path = log_path
        self._connected_workers = connected_workers
        self._offset = offset
        self._patience_s = patience_s
        self._clock = clock
        self._waiting_since: float | None = None

    def stalled(self) -> bool:
        self._read_new_lines()
        if self._waiting_since is None or self._clock() - self._waiting_since < self._patience_s:
            return False
        workers = self._connected_workers()
        if workers is None:
            return False  # daprd did not answer: its own health check is the launcher's concern
        if workers > 0:
            self._waiting_since = None  # the stream was counted: healthy, wait for the next one
            return False
        return True

    def _read_new_lines(self) -> None:
        try:
            with self._log_path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read()
        except OSError:
            return
        # Only whole lines; a line daprd is still writing is read next time.
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        for line in chunk[:end].splitlines():
            if _OPENED in line:
                # The latest stream event decides: an opening after every ending is a stream
                # that should be counted by now.
                if self._waiting_since is None:
                    self._waiting_since = self._clock()
            elif any(marker in line for marker in _ENDED):
                self._waiting_since = None


def connected_workers(metadata_url: str, token: str | None) -> int | None:
    """How many work-item streams daprd counts (its metadata API); None if it did not answer."""
    headers = {"dapr-api-token": token} if token else {}
    request = urllib.request.Request(metadata_url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=_METADATA_TIMEOUT_S) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        log.debug("daprd metadata unavailable", url=metadata_url)
        return None
    # `connectedWorkers` is omitted when it is zero (omitempty in daprd's HTTP API).
    workflows = body.get("workflows") or {}
    return int(workflows.get("connectedWorkers", 0))
