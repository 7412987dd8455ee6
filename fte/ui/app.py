"""The web console's routes: runs, one run, schedules, evals; answering runs and schedules.

Pages are rendered on the server (Jinja, autoescaped) and kept live by a few lines of
script that swap in a page's live fragment: the server pushes it over an event stream
(`/.../events`, server-sent events) whenever it changed, and the page falls back to
re-fetching it (`/.../live`) in a browser without EventSource. No build step, no
client-side rendering of untrusted text. Handlers are plain functions, which Starlette
runs in its thread pool, because the clients they call (the CLI's) are blocking gRPC.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from fte import run_control
from fte.client import ResearchClient
from fte.errors import FteError, RuntimeSetupError, UsageError
from fte.html_report import render_html
from fte.limits import MAX_SUB_QUESTIONS, MIN_SUB_QUESTIONS
from fte.research import validate_run_ref
from fte.schedule.client import ScheduleClient, validate_name
from fte.ui import views
from fte.ui.security import CSRF_FIELD, CsrfError, TokenGate, check_csrf, csrf_token

_HERE = Path(__file__).parent
# The stored report view keeps its own strict policy (no script at all); the console may
# frame it.
REPORT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)
_RUN_ACTIONS = ("approve", "edit", "reject", "cancel")
_SCHEDULE_ACTIONS = ("pause", "resume", "trigger")
# A page's event stream renders its fragment this often (as often as the page used to
# re-fetch it: a run's page reads several things from the engine and the state store, the
# runs list every run) and sends it when it changed.
RUN_RENDER_S = 1.0
RUNS_RENDER_S = 2.0
# A run's stream also looks at the coordinator's state this often (one local gRPC read)
# and renders at once when it changed, so a new stage or the end shows within this.
STREAM_LOOK_S = 0.25
# With nothing new for this long, a comment line keeps proxies from closing the stream.
STREAM_KEEPALIVE_S = 15.0
# How long a browser waits before it reconnects a stream that broke (milliseconds).
STREAM_RETRY_MS = 2000

Served = Callable[[], contextlib.AbstractContextManager[None]]


@dataclass
class ConsoleConfig:
    token: str
    hosts: frozenset[str]
    scorecard: Path
    baseline: Path
    # Around every change: makes sure a worker serves the data directory (the CLI's rule:
    # events reach a run only while a worker has registered the workflow types).
    served: Served = contextlib.nullcontext
    # True once the console is stopping: its event streams end, so the server can stop.
    closing: Callable[[], bool] = lambda: False


class _Flash:
    """One-time messages shown after a redirect (Post/Redirect/Get), kept in memory."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[str, tuple[str, str]] = {}

    def put(self, kind: str, text: str) -> str:
        key = secrets.token_urlsafe(8)
        with self._lock:
            if len(self._messages) > 100:
                self._messages.clear()
            self._messages[key] = (kind, text)
        return key

    def pop(self, key: str | None) -> tuple[str, str] | None:
        if not key:
            return None
        with self._lock:
            return self._messages.pop(key, None)


def sse_event(name: str, data: str) -> str:
    """One server-sent event; every line of `data` is its own `data:` field."""
    lines = "".join(f"data: {line}\n" for line in (data.splitlines() or [""]))
    return f"event: {name}\n{lines}\n"


def _status_of(exc: FteError) -> int:
    if isinstance(exc, UsageError):
        return 400
    if isinstance(exc, RuntimeSetupError):
        return 503
    return {4: 404, 5: 409, 6: 409}.get(exc.exit_code, 500)


def create_app(client: ResearchClient, config: ConsoleConfig) -> Starlette:
    env = Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    # The plan editor states the bounds the edit is checked against.
    env.globals.update(min_sub_questions=MIN_SUB_QUESTIONS, max_sub_questions=MAX_SUB_QUESTIONS)
    templates = Jinja2Templates(env=env)
    flash = _Flash()
    csrf = csrf_token(config.token)

    def page(
        request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> HTMLResponse:
        context = {"csrf_field": CSRF_FIELD, "csrf": csrf, **context}
        return templates.TemplateResponse(request, name, context, status_code=status)

    def error_page(request: Request, exc: Exception, status: int) -> HTMLResponse:
        return page(request, "error.html", {"message": str(exc), "status": status}, status)

    def fragment(name: str, context: dict[str, Any]) -> str:
        return env.get_template(name).render({"csrf_field": CSRF_FIELD, "csrf": csrf, **context})

    Render = Callable[[], tuple[str, bool]]

    async def changes(
        render: Render,
        first: tuple[str, bool],
        *,
        every_s: float,
        fingerprint: Callable[[], object] | None = None,
        seen: object = None,
    ) -> AsyncIterator[str]:
        """A page's live fragment (`first`, then each time it changed), rendered every
        `every_s` and whenever `fingerprint` (a cheap look; `seen` before `first`) changes,
        until its run has finished (the stream ends with an `end` event) or the console
        stops. Starlette ends the generator when the browser goes away."""
        yield f"retry: {STREAM_RETRY_MS}\n\n"
        look_s = STREAM_LOOK_S if fingerprint is not None else every_s
        last: str | None = None
        quiet_s = since_render_s = 0.0
        html: str | None
        html, finished = first
        while True:
            if html is not None and html != last:
                yield sse_event("fragment", html)
                last, quiet_s = html, 0.0
            elif quiet_s >= STREAM_KEEPALIVE_S:
                yield ": nothing new\n\n"
                quiet_s = 0.0
            if finished:
                yield sse_event("end", "")
                return
            await asyncio.sleep(look_s)
            quiet_s += look_s
            since_render_s += look_s
            if config.closing():
                return
            html = None
            try:
                if fingerprint is not None:
                    now = await run_in_threadpool(fingerprint)
                    if now != seen:
                        seen, since_render_s = now, every_s
                if since_render_s >= every_s:
                    html, finished = await run_in_threadpool(render)
                    since_render_s = 0.0
            except (FteError, grpc.RpcError):
                pass  # the sidecar restarting: look again later

    def event_stream(
        request: Request,
        render: Render,
        *,
        every_s: float,
        fingerprint: Callable[[], object] | None = None,
    ) -> Response:
        """The stream of `render`'s fragment; an error page (and no stream, so the browser
        does not reconnect) if it cannot be rendered at all, such as an unknown run."""
        try:
            seen = fingerprint() if fingerprint is not None else None
            first = render()
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))
        stream = changes(render, first, every_s=every_s, fingerprint=fingerprint, seen=seen)
        return StreamingResponse(stream, media_type="text/event-stream")

    def runs_events(request: Request) -> Response:
        status = request.query_params.get("status", "all")
        if status not in views.RUN_FILTERS:
            return error_page(request, UsageError(f"unknown status filter {status!r}"), 400)
        filters = list(views.RUN_FILTERS)

        def render() -> tuple[str, bool]:
            rows = views.run_rows(client, status)
            context = {"rows": rows, "status": status, "filters": filters}
            return fragment("_runs_live.html", context), False

        return event_stream(request, render, every_s=RUNS_RENDER_S)

    def run_events(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        try:
            validate_run_ref(task_id, "ui")
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))

        def render() -> tuple[str, bool]:
            data = views.run_page(client, task_id)
            return fragment("_run_live.html", {"run": data, "flash": None}), data.finished

        def coordinator() -> object:
            state = client.workflow_state(task_id)
            if state is None:
                return None
            return (state.runtime_status, state.last_updated_at, state.serialized_custom_status)

        return event_stream(request, render, every_s=RUN_RENDER_S, fingerprint=coordinator)

    def runs(request: Request) -> Response:
        status = request.query_params.get("status", "all")
        if status not in views.RUN_FILTERS:
            return error_page(request, UsageError(f"unknown status filter {status!r}"), 400)
        template = "_runs_live.html" if request.url.path.endswith("/live") else "runs.html"
        try:
            rows = views.run_rows(client, status)
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))
        return page(
            request,
            template,
            {"rows": rows, "status": status, "filters": list(views.RUN_FILTERS)},
        )

    def run(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        live = request.url.path.endswith("/live")
        try:
            validate_run_ref(task_id, "ui")
            data = views.run_page(client, task_id)
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))
        message = flash.pop(request.query_params.get("flash"))
        return page(
            request,
            "_run_live.html" if live else "run.html",
            {"run": data, "flash": message},
        )

    def report(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        try:
            validate_run_ref(task_id, "ui")
            document = client.report(task_id)
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))
        return HTMLResponse(render_html(document), headers={"Content-Security-Policy": REPORT_CSP})

    async def answer(request: Request) -> Response:
        form = await request.form()
        try:
            check_csrf(request, form.get(CSRF_FIELD), config.token)
        except CsrfError as exc:
            return error_page(request, exc, 403)
        task_id = request.path_params["task_id"]
        action = request.path_params["action"]
        if action not in _RUN_ACTIONS:
            return error_page(request, UsageError(f"unknown action {action!r}"), 404)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}

        try:
            validate_run_ref(task_id, "ui")
            message = await run_in_threadpool(_answer, task_id, action, fields)
        except FteError as exc:
            key = flash.put("error", str(exc))
            # The page again, with the error, and the status code the CLI's exit code means.
            data = await run_in_threadpool(_safe_run_page, task_id)
            if data is None:
                return error_page(request, exc, _status_of(exc))
            return page(
                request,
                "run.html",
                {"run": data, "flash": flash.pop(key)},
                _status_of(exc),
            )
        key = flash.put("ok", message)
        return RedirectResponse(f"/runs/{task_id}?flash={key}", status_code=303)

    def _safe_run_page(task_id: str) -> views.RunPage | None:
        try:
            return views.run_page(client, task_id)
        except FteError:
            return None

    def _answer(task_id: str, action: str, form: dict[str, str]) -> str:
        if action == "approve":
            decision = run_control.approval(approved=True, comment=form.get("comment", ""))
        elif action == "edit":
            lines = [line for line in form.get("sub_questions", "").splitlines() if line.strip()]
            decision = run_control.approval(
                approved=True, comment=form.get("comment", ""), sub_questions=lines
            )
        with config.served():
            if action in ("approve", "edit"):
                return run_control.approve(client, task_id, decision)
            if action == "reject":
                return run_control.reject(client, task_id, form.get("reason", ""))
            return run_control.cancel(client, task_id, form.get("reason", ""))

    def schedules(request: Request) -> Response:
        try:
            rows = views.schedule_rows(client)
        except FteError as exc:
            return error_page(request, exc, _status_of(exc))
        message = flash.pop(request.query_params.get("flash"))
        return page(request, "schedules.html", {"rows": rows, "flash": message})

    async def control_schedule(request: Request) -> Response:
        form = await request.form()
        try:
            check_csrf(request, form.get(CSRF_FIELD), config.token)
        except CsrfError as exc:
            return error_page(request, exc, 403)
        name = request.path_params["name"]
        action = request.path_params["action"]
        reason = form.get("reason", "")
        reason = reason if isinstance(reason, str) else ""

        def control() -> str:
            validate_name(name)
            if action not in _SCHEDULE_ACTIONS:
                raise UsageError(f"unknown schedule action {action!r}")
            with config.served():
                schedules = ScheduleClient(client)
                request_id = schedules.control(name, action, reason)
                view = schedules.wait_applied(name, request_id)
            if action == "trigger" and view.status is not None:
                fired = [r for r in view.status.recent if r.kind == "trigger"]
                if fired:
                    record = fired[-1]
                    detail = f" ({record.detail})" if record.detail else ""
                    return f"Triggered {name}: run {record.run_id} {record.outcome}{detail}"
            paused = view.status is not None and view.status.paused
            return f"Schedule {name} {'paused' if paused else 'active'}"

        try:
            message = await run_in_threadpool(control)
        except FteError as exc:
            key = flash.put("error", str(exc))
        else:
            key = flash.put("ok", message)
        return RedirectResponse(f"/schedules?flash={key}", status_code=303)

    def evals(request: Request) -> Response:
        data = views.eval_page(config.scorecard, config.baseline)
        return page(
            request,
            "evals.html",
            {"evals": data, "bar_max": views.BAR_MAX, "row_height": views.ROW_HEIGHT},
        )

    def home(request: Request) -> Response:
        return RedirectResponse("/runs", status_code=303)

    def unreachable(request: Request, exc: Exception) -> Response:
        # The sidecar restarting or gone: a page that says so, not a stack trace.
        return error_page(
            request,
            RuntimeSetupError("the Dapr sidecar did not answer; try again in a moment"),
            503,
        )

    app = Starlette(
        exception_handlers={grpc.RpcError: unreachable},
        routes=[
            Route("/", home),
            Route("/runs", runs),
            Route("/runs/live", runs),
            Route("/runs/events", runs_events),
            Route("/runs/{task_id}", run),
            Route("/runs/{task_id}/live", run),
            Route("/runs/{task_id}/events", run_events),
            Route("/runs/{task_id}/report", report),
            Route("/runs/{task_id}/{action}", answer, methods=["POST"]),
            Route("/schedules", schedules),
            Route("/schedules/{name}/{action}", control_schedule, methods=["POST"]),
            Route("/evals", evals),
            Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
        ],
    )
    app.add_middleware(TokenGate, token=config.token, hosts=config.hosts)
    return app
