"""Retries tab, dispatch form, queue page and group page in a real browser, at desktop and
phone widths, against the session's real worker and recorder."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.browser.conftest import api_headers, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
#: How far the first table is wider than its frame (the frame would scroll sideways).
TABLE_OVERFLOW = "() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth - w.clientWidth; }"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1440, "height": 900}
#: What Chromium logs for a refused form's answer: the only console error the form test allows.
REFUSED = "Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"


@pytest.fixture()
def form_page(chromium: Any, live_server: Any) -> Iterator[Any]:
    """conftest's `page`, except that the 422 a refused form answers is expected."""
    context = chromium.new_context(viewport=DESKTOP, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert [e for e in errors if e != REFUSED] == [], errors


def dispatch(live_server: Any, headers: dict[str, str], body: dict[str, Any]) -> str:
    answer = live_server.app.test_client().post("/api/jobs/dispatch", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.get_json()["id"])


def job_of(live_server: Any, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = live_server.app.test_client().get(f"/api/jobs/{job_id}", headers=headers).get_json()
    return answer


def fits_a_phone(page: Any, name: str, tmp_path: Path) -> None:
    page.set_viewport_size(PHONE)
    page.reload()
    assert page.locator("h1").first.is_visible()
    assert page.evaluate(OVERFLOW) <= 1, f"{name} scrolls sideways at phone width"
    screenshot(page, f"{name}_phone", tmp_path)


def test_retries_tab_lists_a_waiting_job_and_retry_now_runs_it(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    user = make_user("operator")
    headers = api_headers(live_server, user.tenant)
    body = {
        "job_class": "demo.flaky",
        "payload": {"key": uuid.uuid4().hex, "failures": 1},
        "options": {"backoff": [90], "max_attempts": 3},
    }
    job_id = dispatch(live_server, headers, body)
    wait_for(lambda: job_of(live_server, headers, job_id)["status"] == "retrying", timeout=30, what="retrying")
    page.set_viewport_size(DESKTOP)
    log_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Retries", exact=True).click()
    row = page.locator(f"#retry-{job_id}")
    assert row.get_by_text("1 / 3").is_visible() and row.get_by_text("flaky").first.is_visible()
    assert row.locator("time").is_visible()  # when the next attempt is due
    screenshot(page, "retries", tmp_path)
    fits_a_phone(page, "retries", tmp_path)
    assert page.locator(f"#retry-{job_id}").get_by_role("button", name="Retry now").is_visible()
    assert page.evaluate(TABLE_OVERFLOW) <= 1, "the retries table scrolls sideways at phone width"
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"#retry-{job_id}").get_by_role("button", name="Retry now").click()
    page.get_by_text("runs again now as job").wait_for()
    wait_for(
        lambda: any(
            j["retry_of"] == job_id and j["status"] == "completed"
            for j in live_server.app.test_client().get("/api/jobs", headers=headers).get_json()["items"]
        ),
        timeout=30,
        what="the retry completed",
    )
    assert job_of(live_server, headers, job_id)["status"] == "cancelled"


def test_dispatch_form_shows_a_json_error_then_dispatches_and_opens_the_job(
    form_page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    page = form_page
    user = make_user("operator")
    with live_server.app.app_context():  # the definitions the recorder writes when it starts
        from app.backends.current import backends
        from app.db import db
        from app.services.definitions import sync_definitions

        sync_definitions(db.session, [backends().registry.get("demo.echo")], {})
        db.session.commit()
    log_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dispatch", exact=True).click()
    page.get_by_label("Job class").select_option("demo.echo")
    page.get_by_label("Payload (a JSON object)").fill('{"value": ')
    page.get_by_label("Priority (0–9, 9 first)").fill("7")
    page.get_by_role("button", name="Dispatch").click()
    assert page.get_by_text("not valid JSON").is_visible()
    assert page.get_by_label("Payload (a JSON object)").get_attribute("aria-invalid") == "true"
    assert page.get_by_label("Priority (0–9, 9 first)").input_value() == "7"  # kept for the correction
    screenshot(page, "dispatch_error", tmp_path)
    page.get_by_label("Payload (a JSON object)").fill('{"value": "from the form"}')
    page.get_by_label("Tags (comma-separated)").fill("manual")
    page.get_by_role("button", name="Dispatch").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    assert page.get_by_text("Dispatched demo.echo").is_visible()
    page.locator("#job-title .status-completed").wait_for(timeout=20_000)
    job_id = page.url.rsplit("/", 1)[1]
    job = job_of(live_server, api_headers(live_server, user.tenant), job_id)
    assert job["result"] == "from the form" and job["priority"] == 7 and "manual" in job["tags"]
    page.goto("/dispatch")
    fits_a_phone(page, "dispatch", tmp_path)
    assert page.get_by_role("button", name="Dispatch").is_visible()


def test_queue_page_from_the_queues_page_lists_waiting_messages(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    user = make_user("viewer")
    headers = api_headers(live_server, user.tenant)
    queue = f"held-{uuid.uuid4().hex[:8]}"  # no worker consumes it: its messages wait
    ids = [
        dispatch(live_server, headers, {"job_class": "demo.echo", "options": {"queue": queue, "priority": p}})
        for p in (1, 8, 4)
    ]
    page.set_viewport_size(DESKTOP)
    log_in(page, user)
    page.goto("/queues")
    page.get_by_role("link", name=queue, exact=True).click()
    page.get_by_role("heading", name=f"Queue {queue}").wait_for()
    rows = page.locator("table.pending-messages tbody tr")
    assert rows.count() == 3
    links = [rows.nth(i).get_by_role("link").first.get_attribute("href") for i in range(3)]
    assert links == [f"/jobs/{ids[1]}", f"/jobs/{ids[2]}", f"/jobs/{ids[0]}"]  # highest priority first
    screenshot(page, "queue_page", tmp_path)
    fits_a_phone(page, "queue_page", tmp_path)
    assert page.evaluate(TABLE_OVERFLOW) <= 1, "the messages table scrolls sideways at phone width"
    page.locator("table.pending-messages tbody tr").first.get_by_role("link").first.click()
    page.get_by_role("heading", name=re.compile("demo.echo")).wait_for()


def test_group_page_shows_a_celery_groups_members_and_progress(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    from celery import group

    from app.celery_app import celery_app

    result = group(celery_app.signature("demo.add", args=(n, n)) for n in range(4)).apply_async()
    user = make_user("viewer", tenant="default")  # a plain Celery producer's jobs are the default tenant's
    headers = api_headers(live_server, "default")
    ids = [child.id for child in result.results]
    wait_for(
        lambda: all(job_of(live_server, headers, i).get("status") == "completed" for i in ids),
        timeout=40,
        what="group members completed",
    )
    page.set_viewport_size(DESKTOP)
    log_in(page, user)
    page.goto(f"/jobs/{ids[0]}")
    page.get_by_role("link", name=result.id[:8]).click()
    page.get_by_text("4 of 4 completed").wait_for()
    assert page.locator("table.group-members tbody tr").count() == 4
    screenshot(page, "group", tmp_path)
    fits_a_phone(page, "group", tmp_path)
