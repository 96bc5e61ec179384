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
