"""Jobs, job detail and Failed pages in a real browser, against a real worker and recorder."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.browser.conftest import api_headers, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def dispatch(live_server: Any, headers: dict[str, str], body: dict[str, Any]) -> str:
    answer = live_server.app.test_client().post("/api/jobs/dispatch", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.get_json()["id"])


def status_of(live_server: Any, headers: dict[str, str], job_id: str) -> str:
    return str(live_server.app.test_client().get(f"/api/jobs/{job_id}", headers=headers).get_json()["status"])


def test_a_dispatched_job_appears_and_completes_without_a_reload(
    page: Any, make_user: Any, live_server: Any, stack: Any
) -> None:
    user = make_user("operator")
    log_in(page, user)
    page.goto("/jobs")
    assert page.get_by_text("No jobs yet").is_visible()
    page.evaluate("() => { window.notReloaded = true; }")
    headers = api_headers(live_server, user.tenant)
    job_id = dispatch(live_server, headers, {"job_class": "demo.sleep", "payload": {"seconds": 1}})
    row = page.locator("tr", has=page.locator(f'a[href="/jobs/{job_id}"]'))
    row.wait_for(timeout=15_000)
    row.locator(".status-completed").wait_for(timeout=20_000)
    assert page.evaluate("() => window.notReloaded") is True


def test_retry_a_failed_job_from_its_page(page: Any, make_user: Any, live_server: Any, stack: Any) -> None:
    user = make_user("operator")
    headers = api_headers(live_server, user.tenant)
    failed = dispatch(live_server, headers, {"job_class": "demo.fail", "payload": {"message": "card declined"}})
    wait_for(lambda: status_of(live_server, headers, failed) == "failed", timeout=30, what="job failed")
    log_in(page, user)
    page.goto(f"/jobs/{failed}")
    assert page.get_by_text("RuntimeError").first.is_visible()
    assert page.get_by_role("heading", name="Traceback").is_visible()
    page.get_by_label("Reason for the retry (optional)").fill("card updated")
    page.get_by_role("button", name="Retry", exact=True).click()
    page.wait_for_url(re.compile(r"/jobs/(?!" + failed + r")[0-9a-f-]{36}$"))
    assert page.get_by_text("Retried as job").is_visible()
    retry_id = page.url.rsplit("/", 1)[1]
    assert page.locator(f'a[href="/jobs/{failed}"]').first.is_visible()  # the job it retried
    # The status section follows the retry to its end without a reload (it fails again: demo.fail).
    page.locator("#job-status .status-failed").first.wait_for(timeout=30_000)
    assert status_of(live_server, headers, retry_id) == "failed"


def test_bulk_cancel_everything_matching_a_filter(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    user = make_user("operator")
    headers = api_headers(live_server, user.tenant)
    tag = f"t{uuid.uuid4().hex[:8]}"
    held = [
        dispatch(live_server, headers, {"job_class": "demo.echo", "options": {"queue": f"held-{tag}", "tags": [tag]}})
        for _ in range(2)
    ]
    running = dispatch(
        live_server, headers, {"job_class": "demo.sleep", "payload": {"seconds": 60}, "options": {"tags": [tag]}}
    )
    wait_for(lambda: status_of(live_server, headers, running) == "processing", timeout=30, what="sleep job running")
    untouched = dispatch(live_server, headers, {"job_class": "demo.echo", "options": {"queue": f"held-{tag}"}})
    log_in(page, user)
    page.goto(f"/jobs?tag={tag}")
    assert page.locator("table.responsive tbody tr").count() == 3
    screenshot(page, "jobs-filtered", tmp_path)
    # A ticked box survives the list's live refresh.
    box = page.get_by_label(f"Select job {running[:8]}")
    box.check()
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true" and "/jobs" in r.url):
        pass
    page.wait_for_load_state("networkidle")
    assert page.get_by_label(f"Select job {running[:8]}").is_checked()
    page.get_by_role("link", name="Cancel all matching…").click()
    assert page.locator("#preview-count").inner_text() == "3"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel 3 jobs").click()
    # It runs as a tracked bulk job, whose page follows it to the end.
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    assert page.get_by_text("Bulk cancel started").is_visible()
    page.locator("#job-title .status-completed").wait_for(timeout=30_000)
    assert "cancelled 3, skipped 0 of 3" in page.locator("#job-progress-text").inner_text()
    for job_id in [*held, running]:
        assert status_of(live_server, headers, job_id) == "cancelled"
    assert status_of(live_server, headers, untouched) == "pending"
    # One revoke broadcast reached the worker, which terminated the running job.
    log = stack["worker"].log_path
    wait_for(lambda: f"Terminating {running}" in log.read_text(), timeout=20, what="running job terminated")


def test_failed_page_groups_failures_and_pages_fit_a_phone(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    user = make_user("admin")
    headers = api_headers(live_server, user.tenant, "admin")
    ids = [
        dispatch(live_server, headers, {"job_class": "demo.fail", "payload": {"message": f"order {n} not found"}})
        for n in range(3)
    ]
    wait_for(lambda: all(status_of(live_server, headers, i) == "failed" for i in ids), timeout=30, what="failures")
    log_in(page, user)
    page.goto("/failed")
    group = page.locator("table.failure-groups tbody tr").first
    assert "RuntimeError" in group.inner_text() and group.locator(".status-failed").inner_text() == "3"
    screenshot(page, "failed", tmp_path)
    for path in ("/failed", "/jobs", f"/jobs/{ids[0]}"):
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(path)
        assert page.evaluate(OVERFLOW) <= 1, f"{path} scrolls sideways at phone width"
        page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"/jobs/{ids[0]}")
    screenshot(page, "job-detail", tmp_path)
