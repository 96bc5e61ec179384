"""The console's bulk flow in a real browser: preview with a sample, a tracked bulk job, Cancel."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.integration.browser.conftest import log_in, screenshot
from tests.job_rows import T0

pytestmark = [pytest.mark.browser, pytest.mark.worker]

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def failed_jobs(live_server: Any, tenant: str, queue: str, n: int) -> None:
    from app.db import db
    from app.models import JobExecution

    with live_server.app.app_context():
        db.session.add_all(
            JobExecution(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                job_class="demo.echo",
                queue=queue,
                status="failed",
                payload={"value": k},
                max_attempts=1,
                created_at=T0 + timedelta(seconds=k),
            )
            for k in range(n)
        )
        db.session.commit()


@pytest.mark.parametrize("width", [1280, 390])
def test_retry_all_matching_runs_as_a_bulk_job_that_cancel_stops(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    user = make_user("operator")
    queue = f"held-{uuid.uuid4().hex[:8]}"  # no worker consumes it: the retries stay pending
    failed_jobs(live_server, user.tenant, queue, 4000)
    log_in(page, user)
    # Given a preview of everything matching, with its count and the newest ids,
    page.goto(f"/jobs/bulk/preview?action=retry&queue={queue}")
    assert page.locator("#preview-count").inner_text() == "4,000"
    assert page.locator(".bulk-sample li").count() == 5
    assert page.evaluate(OVERFLOW) <= 1, "the preview scrolls sideways"
    screenshot(page, f"bulk-preview-{width}", tmp_path)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry 4,000 jobs").click()
    # when it runs, its page shows the live bar,
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    page.wait_for_function(
        "() => { const b = document.querySelector('#job-progress-bar'); return b && b.value > 0 && b.value < 100; }",
        timeout=60_000,
    )
    assert page.evaluate(OVERFLOW) <= 1, "the bulk job's page scrolls sideways"
    screenshot(page, f"bulk-running-{width}", tmp_path)
    # and its Cancel stops it between two chunks, keeping (and saying) what was done.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.locator("#job-title .status-cancelled").wait_for(timeout=30_000)
    # (A cancelled job's page stops polling; the note follows when the job's last chunk ends.)
    note = page.get_by_text(re.compile(r"Stopped by its cancel: Retried \d+"))
    wait_for(lambda: page.reload() and note.count() > 0, timeout=60, what="the bulk job's stop note")
    found = re.search(r"Retried (\d+)", note.first.inner_text())
    assert found and 0 < int(found.group(1)) < 4000


@pytest.mark.parametrize("width", [1280, 390])
def test_an_admin_purges_all_matching_finished_jobs_through_a_bulk_job(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path, width: int
) -> None:
    from app.db import db
    from app.models import JobExecution

    page.set_viewport_size({"width": width, "height": 900})
    user = make_user("admin")
    queue = f"old-{uuid.uuid4().hex[:8]}"
    failed_jobs(live_server, user.tenant, queue, 450)  # more than two chunks
    waiting = str(uuid.uuid4())  # not finished: a purge leaves it alone
    with live_server.app.app_context():
        row = JobExecution(id=waiting, tenant_id=user.tenant, job_class="demo.echo", queue=queue, status="pending")
        db.session.add(row)
        db.session.commit()
    log_in(page, user)
    # Given the Jobs list filtered to the queue, an admin opens "Purge all matching…":
    page.goto(f"/jobs?queue={queue}")
    assert page.evaluate(OVERFLOW) <= 1, "the jobs list scrolls sideways"
    page.get_by_role("link", name="Purge all matching…").click()
    page.wait_for_url(re.compile(r"/jobs/bulk/purge/preview\?"))
    assert page.locator("#preview-count").inner_text() == "450"
    assert page.locator(".bulk-sample li").count() == 5
    assert "cannot be undone" in page.locator("#purge-warning").inner_text()
    assert page.evaluate(OVERFLOW) <= 1, "the purge preview scrolls sideways"
    screenshot(page, f"purge-preview-{width}", tmp_path)
    sample = page.locator(".bulk-sample code").first.inner_text()
    # it asks for confirmation, then runs as a bulk job that completes,
    dialogs: list[str] = []
    page.once("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Purge 450 jobs").click()
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    assert dialogs and "cannot be undone" in dialogs[0]
    page.locator("#job-title .status-completed").wait_for(timeout=60_000)
    assert page.evaluate(OVERFLOW) <= 1, "the bulk job's page scrolls sideways"
    # and the purged jobs are gone: from the list, and their own pages.
    page.goto(f"/jobs?queue={queue}&status=failed")
    page.get_by_text("No job matches these filters").wait_for()
    assert page.request.get(f"/jobs/{sample}").status == 404
    page.goto(f"/jobs?queue={queue}")
    assert page.locator(".jobs-table tbody tr").count() == 1
    assert page.locator(f'a[href="/jobs/{waiting}"]').count() > 0
