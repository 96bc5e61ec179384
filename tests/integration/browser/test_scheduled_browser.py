"""The Scheduled tab in a real browser at desktop and phone widths: delayed and long-delayed
jobs, soonest first, in local time; "run now" releases a held job, which then runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import get_settings
from app.db import session_scope
from app.recording.scheduled import Releaser
from app.redis_client import get_redis
from tests.conftest import wait_for
from tests.integration.browser.conftest import api_headers, log_in, screenshot
from tests.integration.browser.test_console_gaps_browser import DESKTOP, OVERFLOW, dispatch, fits_a_phone, job_of

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_scheduled_tab_lists_delayed_jobs_and_run_now_releases_a_held_one(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path
) -> None:
    settings = get_settings()
    user = make_user("operator")
    headers = api_headers(live_server, user.tenant)
    long_delay = settings.scheduled_after_s + 40  # past the threshold: held in the scheduled set
    held = dispatch(
        live_server, headers, {"job_class": "demo.echo", "payload": {"value": 1}, "options": {"delay": long_delay}}
    )
    eta = dispatch(live_server, headers, {"job_class": "demo.echo", "payload": {"value": 2}, "options": {"delay": 30}})
    assert job_of(live_server, headers, held)["due_at"] is not None
    assert job_of(live_server, headers, eta)["due_at"] is None
    page.set_viewport_size(DESKTOP)
    log_in(page, user)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Scheduled", exact=True).click()
    page.locator(f"#scheduled-{held}").wait_for()
    rows = page.locator("table.scheduled-table tbody tr")
    ids = [rows.nth(i).get_attribute("id") for i in range(rows.count())]
    assert ids.index(f"scheduled-{eta}") < ids.index(f"scheduled-{held}")  # soonest first
    held_row = page.locator(f"#scheduled-{held}")
    assert held_row.get_by_text("delayed").is_visible() and held_row.locator("time").is_visible()
    assert held_row.get_by_text("scheduled set").is_visible()
    assert page.locator(f"#scheduled-{eta}").get_by_role("button", name="Run now").count() == 0
    assert page.evaluate(OVERFLOW) <= 1
    screenshot(page, "scheduled", tmp_path)
    fits_a_phone(page, "scheduled", tmp_path)
    assert page.locator(f"#scheduled-{held}").get_by_role("button", name="Cancel").is_visible()
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator(f"#scheduled-{held}").get_by_role("button", name="Run now").click()
    page.get_by_text("is due now").wait_for()
    # The recorder's releaser (here in the test process, as the session recorder runs in a thread).
    Releaser(settings, get_redis(settings.redis_url), session_scope).release_due()
    wait_for(lambda: job_of(live_server, headers, held)["status"] == "completed", timeout=30, what="the job to run")
    page.goto(f"/jobs/{eta}")
    assert page.locator(".job-due").count() == 0  # a broker ETA job: no scheduled-set due time
