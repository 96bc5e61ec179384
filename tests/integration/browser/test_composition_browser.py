"""Batch, chain and schedule details in a real browser, from the showcase tenant's history."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import screenshot
from tests.integration.browser.test_schedules_browser import log_in_to

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_batch_and_chain_details_show_progress_and_steps(page: Any, showcase: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    log_in_to(page, showcase.admin, "/batches")
    page.get_by_role("link", name="nightly import").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("nightly import")
    expect(page.locator("main")).to_contain_text("100% processed: 5 of 5 jobs")
    screenshot(page, "batch", tmp_path)
    page.locator("main table").last.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))

    page.goto("/chains")
    page.get_by_role("link", name="report").click()
    expect(page.locator("main")).to_contain_text("All 3 steps completed.")
    expect(page.locator("ol.steps li")).to_have_count(3)
    screenshot(page, "chain", tmp_path)

    page.goto("/schedules")
    page.get_by_role("link", name="demo.echo").first.click()
    expect(page.locator("main")).to_contain_text("Every 15 minutes")
    expect(page.get_by_role("button", name="Run now")).to_be_visible()
    screenshot(page, "schedule", tmp_path)


def test_batch_page_updates_itself_until_the_batch_finishes(
    page: Any, make_user: Any, live_server: Any, worker: Any, recorder: Any
) -> None:
    from playwright.sync_api import expect

    from tests.integration.browser.conftest import api_headers

    user = make_user("operator")
    body = {"name": "slow import", "jobs": [{"job_class": "demo.sleep", "payload": {"seconds": 2}}] * 2}
    created = live_server.app.test_client().post(
        "/api/batches", json=body, headers=api_headers(live_server, user.tenant)
    )
    assert created.status_code == 201
    log_in_to(page, user, f"/batches/{created.get_json()['id']}")
    expect(page.get_by_role("button", name="Cancel batch")).to_be_visible()
    reason = page.get_by_placeholder("reason (optional)")
    reason.fill("typing while it refreshes")
    expect(page.locator("#batch-summary")).to_contain_text("finished", timeout=30_000)
    expect(page.locator("#batch-summary")).to_contain_text("100% processed: 2 of 2 jobs")
    expect(page.locator("#batch-jobs .status-completed")).to_have_count(2)
    expect(reason).to_have_value("typing while it refreshes")
