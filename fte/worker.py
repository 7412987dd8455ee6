"""The workflow worker: registers workflows/activities and serves the sidecar's work stream."""

from __future__ import annotations

import inspect
import math
import threading
import time
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

import dapr.ext.workflow as wf
import structlog
from dapr.ext.workflow._durabletask.internal import shared as sdk_shared
from dapr.ext.workflow._durabletask.task import NonRetryableError
from dapr.ext.workflow.logger import LoggerOptions

from fte import names
from fte.api_tokens import sdk_token
from fte.errors import ActivityResultTooLargeError, RuntimeSetupError

if TYPE_CHECKING:
    from fte.dapr_stack import RuntimeEndpoint

log = structlog.get_logger(__name__)

# An activity result reaches the sidecar as one gRPC message (4 MB at most) and then lives in
# the workflow's history, read again on every replay of the run. A result anywhere near that
# is a bug in what the activity returns (a whole file instead of bounded passages), so it is
# capped well below the transport limit, and the failure is permanent: a retry would return
# the same bytes.
MAX_ACTIVITY_RESULT_BYTES = 1024 * 1024

# After the last activity returns, the SDK still sends its result on the channel, and daprd
# then forwards it to the activity's workflow (inbox write, reminder). Closing the work
# stream unregisters the workflow types at once, so a forward still under way fails and the
# activity runs again later (seen in tests/engine/test_worker_stop.py with no grace after
# the send). stop() waits until every result is sent (`_count_until_sent`) and then this
# long after the last send (after the last return, where the SDK cannot be wrapped).
_RESPONSE_GRACE_S = 0.3

# Plain-function activities run on the SDK's thread pool, `cpu_count + 4` threads unless
# told: on 2 cores six activities at a time, so eight parallel model calls went in two
# waves. Our activities mostly wait (model servers, the sidecar), so the pool is sized for
# waiting, not for cores; a thread that waits costs a stack and no CPU. How many model
# calls may actually be in flight is capped separately (`LLMConfig.max_concurrent_requests`).
DEFAULT_ACTIVITY_THREADS = 64


class _InFlight:
    """Counts activities that are executing in this process."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()
        self._last_done = -math.inf  # time.monotonic() when an activity last returned
        # time.monotonic() when an activity of each run (task ID) last returned
        self._last_done_by_run: dict[str, float] = {}

    def __enter__(self) -> None:
        self.begin()

    def __exit__(self, *exc_info: object) -> None:
        self.done(None)

    def begin(self) -> None:
        with self._idle:
            self._count += 1

    def done(self, instance_id: str | None) -> None:
        """One activity finished (of the workflow `instance_id`, when known)."""
        with self._idle:
            self._count -= 1
            self._last_done = time.monotonic()
            if instance_id is not None:
                self._last_done_by_run[_run_of(instance_id)] = self._last_done
            self._idle.notify_all()

    def since_last_done(self, *, except_runs: Collection[str] = ()) -> float:
        """Seconds since an activity last finished; those of `except_runs` do not count."""
        with self._idle:
            if not except_runs:
                return time.monotonic() - self._last_done
            last = max(
                (t for run, t in self._last_done_by_run.items() if run not in except_runs),
                default=-math.inf,
            )
            return time.monotonic() - last

    @property
    def count(self) -> int:
        return self._count

    def wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._count == 0, timeout=timeout_s)


class Registry:
    """What a `register` callback sees: registers workflows and activities by stable name.

    Each registration wraps the function in a fresh function object: the SDK marks
    a registered function and refuses to register it again, but one process may
    serve several runtimes over its life (a restarted worker, tests). Workflows
    and activities are always called by name, so the wrapper is invisible.

    A workflow whose code changes while runs may be in flight is registered under
    named versions (`version=`), one of them `latest`. The engine records the
    version a run started with in its history and every later replay of that run
    uses the same version, so old runs finish on old code while new runs start on
    the latest; a worker that lacks a run's version leaves it STALLED (not failed)
    until a worker that has it connects. A run started before its workflow had
    versions has none recorded and replays on the latest version, so the current
    code must be registered as the first version before a changed one is added.
    Small in-place changes can use `ctx.is_patched(name)` instead.
    """

    def __init__(self, runtime: wf.WorkflowRuntime, in_flight: _InFlight) -> None:
        self._runtime = runtime
        self._in_flight = in_flight
        self._unversioned: set[str] = set()
        # name -> {version: is_latest}
        self._versions: dict[str, dict[str, bool]] = {}

    def workflow(
        self,
        name: str,
        fn: Callable[..., Any],
        *,
        version: str | None = None,
        latest: bool = False,
    ) -> None:
        """Register `fn` as workflow `name`, or as one named `version` of it.

        A name is either unversioned or versioned, never both: the SDK would
        silently run the unversioned function for every version. Exactly one
        version per name must be `latest` (checked by `check_complete`).
        """

        def registered(ctx: Any, inp: Any = None) -> Any:
            return fn(ctx, inp)

        registered.__name__ = name if version is None else f"{name}@{version}"
        if version is None:
            if latest:
                raise ValueError(f"workflow {name!r}: latest=True needs a version")
            if name in self._versions:
                raise ValueError(f"workflow {name!r} is already registered with versions")
            self._runtime.register_workflow(registered, name=name)
            self._unversioned.add(name)
            return
        if not version:
            raise ValueError(f"workflow {name!r}: the version name must not be empty")
        if name in self._unversioned:
            raise ValueError(f"workflow {name!r} is already registered without a version")
        versions = self._versions.setdefault(name, {})
        if latest and any(versions.values()):
            current = next(v for v, is_latest in versions.items() if is_latest)
            raise ValueError(f"workflow {name!r}: {current!r} is already the latest version")
        # The SDK raises ValueError for a repeated version name.
        self._runtime.register_versioned_workflow(
            registered, name=name, version_name=version, is_latest=latest
        )
        versions[version] = latest

    def check_complete(self) -> None:
        """Fail if a versioned workflow has no latest version.

        Without one the SDK cannot start new runs of it, and fails each with
        "orchestrator was not registered" instead of refusing at startup.
        """
        for name, versions in self._versions.items():
            if not any(versions.values()):
                raise ValueError(
                    f"workflow {name!r}: none of the versions {sorted(versions)} is latest"
                )

    def activity(self, name: str, fn: Callable[..., Any]) -> None:
        """Register `fn` as activity `name`; an `async def` stays a coroutine function.

        The SDK awaits a coroutine activity on its event loop, holding no thread while it
        waits; a plain function runs on the worker's thread pool (`threads`). The wrapper
        must keep that shape, or an async activity would be run on a thread and return an
        un-awaited coroutine.
        """
        in_flight = self._in_flight
        if inspect.iscoroutinefunction(fn):

            async def registered_async(ctx: Any, inp: Any = None) -> Any:
                with in_flight:
                    result = await fn(ctx, inp)
                    _check_result_size(name, ctx, result)
                    return result

            registered_async.__name__ = name
            self._runtime.register_activity(registered_async, name=name)
            return

        def registered(ctx: Any, inp: Any = None) -> Any:
            with in_flight:
                result = fn(ctx, inp)
                _check_result_size(name, ctx, result)
                return result

        registered.__name__ = name
        self._runtime.register_activity(registered, name=name)


def _check_result_size(name: str, ctx: Any, result: Any) -> None:
    """Refuse, permanently, a result too big to travel to the sidecar and live in history."""
    if result is None:
        return
    size = len(sdk_shared.to_json(result).encode())
    if size <= MAX_ACTIVITY_RESULT_BYTES:
        return
    workflow_id = getattr(ctx, "workflow_id", "?")
    log.error(
        "activity.result_too_large",
        activity=name,
        workflow_id=workflow_id,
        bytes=size,
        limit=MAX_ACTIVITY_RESULT_BYTES,
    )
    error = ActivityResultTooLargeError(
        f"activity {name} of workflow {workflow_id} returned {size:,} bytes, over the "
        f"{MAX_ACTIVITY_RESULT_BYTES:,}-byte limit for one activity result; "
        "an activity must return bounded data (passages, keys), never whole documents"
    )
    raise NonRetryableError(f"{type(error).__name__}: {error}") from error


def _count_until_sent(runtime: wf.WorkflowRuntime) -> _InFlight | None:
    """Count each activity from the start of its SDK handler until its result is sent.

    The SDK runs an activity and then sends the result from the same handler
    (`_execute_activity`, or `_execute_activity_async` for coroutines), looked up on its
    gRPC worker per work item; wrapping them on that instance tells stop() when the last
    result is out. Returns None when this SDK version has no such handlers (stop() then
    falls back to a grace period).
    """
    sdk_worker = getattr(runtime, "_WorkflowRuntime__worker", None)
    handlers = ("_execute_activity", "_execute_activity_async")
    if sdk_worker is None or not all(callable(getattr(sdk_worker, h, None)) for h in handlers):
        return None
    unsent = _InFlight()
    plain = sdk_worker._execute_activity
    coroutine = sdk_worker._execute_activity_async

    # Both take (activity function, ActivityRequest, stub, completion token).
    def execute_activity(fn: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        unsent.begin()
        try:
            return plain(fn, req, *args, **kwargs)
        finally:
            unsent.done(req.workflowInstance.instanceId)

    async def execute_activity_async(fn: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        unsent.begin()
        try:
            return await coroutine(fn, req, *args, **kwargs)
        finally:
            unsent.done(req.workflowInstance.instanceId)

    sdk_worker._execute_activity = execute_activity
    sdk_worker._execute_activity_async = execute_activity_async
    return unsent


def _run_of(instance_id: str) -> str:
    """The run (task ID) a workflow instance belongs to: itself, or its parent for a child."""
    parent = names.parent_of(instance_id)
    return parent[0] if parent is not None else instance_id


Registrar = Callable[[Registry], None]


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
        drain_timeout_s: float = 15.0,
        max_concurrent_activities: int | None = None,
        threads: int = DEFAULT_ACTIVITY_THREADS,
        api_token: str | None = None,
    ) -> None:
        with sdk_token(api_token):
            self._runtime = wf.WorkflowRuntime(
                host=host,
                port=str(port) if port is not None else None,
                # The SDK logs every registration and reconnect at INFO to stderr;
                # keep the terminal for our own progress output.
                logger_options=LoggerOptions(log_level="WARNING"),
                worker_ready_timeout=ready_timeout_s,
                maximum_concurrent_activity_work_items=max_concurrent_activities,
                maximum_thread_pool_workers=threads,
            )
        self._in_flight = _InFlight()
        # Activities from delivery until their result is sent back (None: SDK not wrappable).
        self._unsent = _count_until_sent(self._runtime)
        self._drain_timeout_s = drain_timeout_s
        # Runs seen to have ended: every result of theirs has reached its workflow.
        self._settled: set[str] = set()
        registry = Registry(self._runtime, self._in_flight)
        register(registry)
        registry.check_complete()
        self._started = False

    @classmethod
    def on(cls, endpoint: RuntimeEndpoint, register: Registrar, **options: Any) -> WorkflowWorker:
        """A worker of the sidecar at `endpoint` (with its API token); `options` as above."""
        return cls(
            host=endpoint.host,
            port=endpoint.grpc_port,
            register=register,
            api_token=endpoint.api_token,
            **options,
        )

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
        """Let running activities finish, then stop.

        The SDK closes its gRPC channel before it waits for its thread pool, and
        an activity that then sends its result on the closed channel crashes
        grpc's C core (SIGSEGV). Draining first avoids that; an activity cut
        off by the drain timeout simply runs again later (at-least-once).
        """
        if not self._started:
            return
        if self._in_flight.count:
            log.warning(
                "waiting for running activities before stopping",
                running=self._in_flight.count,
                timeout_s=self._drain_timeout_s,
            )
        # Until each result is sent where that can be seen, else until each activity returned.
        if self._unsent is not None and self._unsent.wait_idle(self._drain_timeout_s):
            # Only a result sent just now may still be on its way to its workflow, and not
            # one of a run that has ended since: `fte research` stops its worker once its
            # run is over (it used to sleep out the grace, ~0.3 s, every time).
            since = self._unsent.since_last_done(except_runs=self._settled)
            time.sleep(max(0.0, _RESPONSE_GRACE_S - since))
        elif self._unsent is None and self._in_flight.wait_idle(self._drain_timeout_s):
            time.sleep(max(0.0, _RESPONSE_GRACE_S - self._in_flight.since_last_done()))
        self._runtime.shutdown()
        self._started = False

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no activity runs in this worker; False if one still ran after
        `timeout_s`. An activity outlives its workflow's end (a cancelled run's call
        finishes on its own), and what it does last must have been done."""
        return self._in_flight.wait_idle(timeout_s)

    def settle(self, task_id: str) -> None:
        """`task_id`'s run has ended (its caller saw it): stop() need not wait for its results,
        which its workflows all had before they could end."""
        self._settled.add(task_id)

    def __enter__(self) -> WorkflowWorker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
