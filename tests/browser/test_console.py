"""The web console in Chromium against a real stack: live runs, approvals, rejection, safety."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
from playwright.sync_api import BrowserContext, Page, expect

from fte import artifacts
from fte.contracts import ApprovalDecision, ModelEndpoint, RunConfig
from fte.report import budget_stop_sentence, round_summary
from fte.schedule.client import ScheduleClient, make_spec
from fte.ui.app import STREAM_RETRY_MS
from fte.ui.security import cookie_name
from tests.support.console import Console

QUERY = "How do durable timers fire after a restart?"
LIVE = 90_000  # ms: a whole offline run on a loaded 2-core machine


def _id(name: str) -> str:
    return f"ui-{name}-{uuid.uuid4().hex[:6]}"


def _mark(page: Page) -> None:
    """A flag in the page's JS state: it survives live updates and is lost by any reload."""
    page.evaluate("window.__notReloaded = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__notReloaded === true"))


def test_runs_page_shows_a_new_run_live(page: Page, console: Console) -> None:
    _mark(page)
    task_id = console.start(_id("list"), QUERY, approve=True)
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row).to_be_visible(timeout=LIVE)
    expect(row.locator(".state")).to_have_text("awaiting approval", timeout=LIVE)
    expect(row.locator("td.query")).to_have_text(QUERY)
    assert _not_reloaded(page), "the row arrived by a live update, not a reload"
    # The filter shows it among the runs waiting for approval and not among completed ones.
    page.goto(f"{console.url}/runs?status=awaiting_approval")
    expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_be_visible()
    page.goto(f"{console.url}/runs?status=completed")
    expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(0)
    assert not _not_reloaded(page)  # a navigation does lose the marker
    console.client.cancel(task_id, "test over")


def test_follow_a_run_live_to_completion(page: Page, console: Console) -> None:
    task_id = console.start(_id("follow"), QUERY, approve=True)
    console.wait_stage(task_id, "awaiting_approval")
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{console.url}/runs/{task_id}")
    expect(page.locator("#run-status")).to_have_text("awaiting approval")
    _mark(page)
    # Answered elsewhere (as `fte approve` would); the open page follows without a reload.
    console.client.approve(task_id, ApprovalDecision(approved=True))
    expect(page.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    assert _not_reloaded(page), "the page updated itself; it was not reloaded"
    expect(page.locator("#run-plan .state-done").first).to_be_visible()
    expect(page.locator("#run-claims li").first).to_be_visible()
    expect(page.locator("#run-timeline")).to_contain_text(f"{task_id}.analyst")
    expect(page.locator("#run-timeline")).to_contain_text("writer")
    # The stored HTML report, framed.
    frame = page.frame_locator("iframe.report")
    expect(frame.locator("h1")).to_be_visible(timeout=LIVE)
    # Live updates stop once the run has finished.
    expect(page.locator("[data-live-url]")).to_have_attribute("data-finished", "1")
    # They came over one event stream, which ended with the run: no fragment was polled,
    # and the browser did not reconnect (it would after STREAM_RETRY_MS without `end`).
    page.wait_for_timeout(STREAM_RETRY_MS + 1000)
    assert [u for u in requested if u.endswith("/events")] == [
        f"{console.url}/runs/{task_id}/events"
    ]
    assert not [u for u in requested if "/live" in u]


def _stream(console: Console, path: str) -> httpx.Response:
    cookies = {cookie_name(console.token): console.token}
    with httpx.Client(base_url=console.url, cookies=cookies, timeout=30) as http:
        return http.get(path)


def test_a_finished_runs_event_stream_sends_its_page_once_and_ends(console: Console) -> None:
    task_id = console.start(_id("stream"), QUERY)
    console.client.wait(task_id, timeout_s=LIVE / 1000)
    response = _stream(console, f"/runs/{task_id}/events")  # returns: the stream ended
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if block.strip()]
    assert events[0] == f"retry: {STREAM_RETRY_MS}"
    assert [block.split("\n", 1)[0] for block in events[1:]] == [
        "event: fragment",
        "event: end",
    ]
    fragment = "\n".join(line.removeprefix("data: ") for line in events[1].split("\n")[1:])
    assert 'id="run-status"' in fragment and ">completed<" in fragment
    assert _stream(console, "/runs/no-such-run/events").status_code == 404


def test_approve_at_the_gate_and_see_it_continue(page: Page, console: Console) -> None:
    task_id = console.start(_id("approve"), QUERY, approve=True)
    console.wait_stage(task_id, "awaiting_approval")
    page.goto(f"{console.url}/runs/{task_id}")
    # The approval request notice links to this page.
    notices = page.locator("#run-notices")
    expect(notices).to_contain_text("approval request")
    expect(notices).to_contain_text(f"{console.url}/runs/{task_id}")
    page.fill("form[action$='/approve'] input[name=comment]", "looks right")
    page.click("#approve")
    expect(page.locator(".flash.ok")).to_have_text(f"Approved the plan of {task_id}")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    snap = console.client.snapshot(task_id)
    assert snap.end_state == "completed"
    assert console.client.report(task_id)["claims"], "the approved run went on to a report"


def test_edited_plan_is_validated_like_the_cli(page: Page, console: Console) -> None:
    task_id = console.start(_id("edit"), QUERY, approve=True)
    console.wait_stage(task_id, "awaiting_approval")
    page.goto(f"{console.url}/runs/{task_id}")
    page.click("details summary")
    page.fill("textarea[name=sub_questions]", "Only one question?")
    page.click("#approve-edited")
    # The CLI's message for the same input, and the run still waits.
    expect(page.locator(".flash.error")).to_contain_text(
        "an edited plan needs 3 to 16 non-empty sub-questions, got 1"
    )
    waiting = console.client.snapshot(task_id).progress
    assert waiting is not None and waiting.stage == "awaiting_approval"
    edited = [
        "How do durable timers fire after a restart?",
        "How do retry policies space out attempts?",
        "How do approval gates wait for people?",
    ]
    page.click("details summary")
    page.fill("textarea[name=sub_questions]", "\n".join(edited))
    page.click("#approve-edited")
    expect(page.locator(".flash.ok")).to_contain_text("with an edited plan")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    plan = console.client.store.get(task_id, artifacts.PLAN)
    assert plan is not None
    assert [q["text"] for q in plan["sub_questions"]] == edited


def test_reject_runs_compensation(page: Page, console: Console) -> None:
    task_id = console.start(_id("reject"), QUERY, approve=True)
    console.wait_stage(task_id, "awaiting_approval")
    assert console.client.store.get(task_id, artifacts.PLAN) is not None
    page.goto(f"{console.url}/runs/{task_id}")
    page.fill("form[action$='/reject'] input[name=reason]", "too broad <b>really</b>")
    page.click("#reject")
    expect(page.locator(".flash.ok")).to_contain_text("its partial artifacts will be deleted")
    expect(page.locator("#run-status")).to_have_text("rejected", timeout=LIVE)
    expect(page.locator("#run-head .reason")).to_contain_text("too broad <b>really</b>")
    # Compensation deleted the run's artifacts; the notices tell what happened.
    assert console.client.store.get(task_id, artifacts.PLAN) is None
    expect(page.locator("#run-notices")).to_contain_text("rejected: too broad <b>really</b>")
    expect(page.locator("#run-actions form")).to_have_count(0)  # nothing left to answer


def test_cancel_from_the_page(page: Page, console: Console) -> None:
    task_id = console.start(_id("cancel"), QUERY, approve=True)
    console.wait_stage(task_id, "awaiting_approval")
    page.goto(f"{console.url}/runs/{task_id}")
    page.click("#cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE)
    assert console.client.store.get(task_id, artifacts.PLAN) is None


def test_a_request_without_the_token_is_refused(context: BrowserContext, console: Console) -> None:
    page = context.new_page()  # a browser that never opened the token URL
    response = page.goto(f"{console.url}/runs")
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("needs its access token")
    wrong = page.goto(f"{console.url}/runs?token=not-the-token")
    assert wrong is not None and wrong.status == 403
    assert not [c for c in context.cookies() if c["name"].startswith("fte_ui_")]


def test_a_source_with_script_renders_as_text(page: Page, console: Console) -> None:
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    task_id = console.start(_id("script"), "How do durable timer scripts fire after a restart?")
    page.goto(f"{console.url}/runs/{task_id}")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    sources = page.locator("#run-sources")
    expect(sources).to_contain_text("<script>window.__pwned = 1</script>")
    expect(sources).to_contain_text('<img src="x" onerror="window.__pwned = 2">')
    assert page.evaluate("window.__pwned === undefined")
    # Only the console's own script is in the document; no image came from the source.
    assert page.locator("script").count() == 1
    assert page.locator("#run-sources img").count() == 0
    frame = page.frame_locator("iframe.report")
    expect(frame.locator("body")).to_be_visible()
    assert not [m for m in messages if "__pwned" in m]


def test_schedules_page_pauses_resumes_and_triggers(page: Page, console: Console) -> None:
    name = _id("weekly")
    run = RunConfig(
        query=QUERY, corpus_dir=str(console.corpus), endpoint=ModelEndpoint(offline=True)
    )
    spec = make_spec(
        name=name,
        run=run,
        every="1d",
        cron=None,
        tz="UTC",
        start_at=None,
        end_at=None,
        overlap="skip",
        catchup_window="1h",
        jitter="",
        min_interval_s=60,
    )
    schedules = ScheduleClient(console.client)
    schedules.add(spec)
    try:
        view = schedules.wait_started(name)
        assert view.status is not None and view.status.next_fire is not None
        page.goto(f"{console.url}/schedules")
        row = page.locator(f'tr[data-schedule="{name}"]')
        expect(row).to_contain_text("every 1d")
        next_fire = datetime.fromisoformat(view.status.next_fire).astimezone(UTC)
        expect(row).to_contain_text(next_fire.strftime("%Y-%m-%d %H:%M:%S UTC"))
        expect(row.locator(".state")).to_have_text("active")
        row.locator("button", has_text="pause").click()
        expect(page.locator(".flash.ok")).to_have_text(f"Schedule {name} paused")
        expect(row.locator(".state").first).to_have_text("paused")
        expect(row).to_contain_text("none (paused)")
        row.locator("button", has_text="resume").click()
        expect(page.locator(".flash.ok")).to_have_text(f"Schedule {name} active")
        row.locator("button", has_text="trigger").click()
        expect(page.locator(".flash.ok")).to_contain_text(f"Triggered {name}: run {name}-")
        status = schedules.get(name).status
        assert status is not None and status.triggers == 1 and status.last_run
        console.client.wait(status.last_run, timeout_s=LIVE / 1000)
        page.reload()
        expect(row.locator("a")).to_have_text(status.last_run)
        expect(row).to_contain_text("completed")
        expect(row.locator("td.change")).to_contain_text("first completed run")
    finally:
        schedules.remove(name)


def test_a_deeper_run_shows_its_rounds_and_spend(page: Page, console: Console) -> None:
    # Markup in the question reaches the plan and the gaps: it must show as text.
    query = "How do durable <i>timers</i> fire after a restart?"
    task_id = console.start(_id("depth"), query, depth=1, max_tokens=500_000)
    page.goto(f"{console.url}/runs/{task_id}")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=LIVE)
    progress = console.client.snapshot(task_id).progress
    assert progress is not None and progress.spend is not None and len(progress.rounds) == 1
    first = progress.rounds[0]
    assert first.looked_for, "the offline run leaves gaps on this corpus for round 1 to look for"
    rounds = page.locator("#run-rounds")
    expect(rounds.locator("#round-1 .round-summary")).to_have_text(round_summary(first))
    expect(rounds.locator("#round-1 .gap-question")).to_have_text(
        [g.question for g in first.looked_for]
    )
    assert any("<i>" in g.question for g in first.looked_for)
    expect(rounds.locator("i")).to_have_count(0)  # shown as text, never as markup
    remaining = console.client.report(task_id)["remaining_gaps"]
    expect(rounds.locator("ul.remaining .gap-question")).to_have_text(
        [g["question"] for g in remaining]
    )
    expect(page.locator("#run-budget")).to_have_text(progress.spend.describe())
    expect(rounds.locator("dl.spend")).to_contain_text("500,000 tokens")
    expect(page.locator("#run-round")).to_have_text("1 of 1")
    expect(page.locator("#run-plan")).not_to_contain_text("More progress")

    # The runs page: spend against the budget, times short in UTC with the full one as title.
    page.goto(f"{console.url}/runs")
    row = page.locator(f'tr[data-task-id="{task_id}"]')
    expect(row.locator("td.budget")).to_have_text(re.compile(r"^[\d.]+k / 500k tokens$"))
    expect(row.locator("td.budget")).to_have_attribute("title", progress.spend.describe())
    started = row.locator("td.when time").first
    expect(started).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d$"))
    iso = started.get_attribute("title")
    assert iso is not None
    assert datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M") == (
        started.inner_text()
    )

    # The same run with a budget that its first pass uses up: the budget's note shows.
    tight = console.start(_id("budget"), query, depth=1, max_tokens=progress.spend.tokens - 1)
    console.client.wait(tight, timeout_s=LIVE / 1000)
    spent = console.client.snapshot(tight).progress
    assert spent is not None and spent.spend is not None and spent.spend.stopped
    page.goto(f"{console.url}/runs/{tight}")
    expect(page.locator("#run-rounds .budget-stop")).to_have_text(
        budget_stop_sentence(spent.spend.stopped)
    )
