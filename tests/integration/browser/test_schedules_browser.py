"""The cron builder in a real browser: fields and expression in step, live preview, save."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import ConsoleUser, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.redis]


def log_in_to(page: Any, user: ConsoleUser, path: str) -> None:
    page.goto(f"/login?next={path}")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: url.endswith(path))


def test_cron_builder_previews_before_saving_and_creates_the_schedule(
    page: Any, make_user: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    log_in_to(page, make_user("admin"), "/schedules")
    page.get_by_role("link", name="New schedule").click()
    page.get_by_label("Minute").fill("30")
    page.get_by_label("Hour").fill("2")
    page.get_by_label("Day of week").fill("1-5")
    expect(page.get_by_label("Cron expression")).to_have_value("30 2 * * 1-5")
    page.get_by_label("Timezone").select_option("Europe/Berlin")
    preview = page.locator("#cron-preview")
    expect(preview).to_contain_text("At 02:30, Monday through Friday")
    expect(preview).to_contain_text("Europe/Berlin")
    expect(preview.locator("li")).to_have_count(5)

    page.get_by_label("Cron expression").fill("0 9 * * *")
    expect(page.get_by_label("Hour")).to_have_value("9")
    expect(preview).to_contain_text("At 09:00")
    page.get_by_label("Cron expression").fill("61 * * * *")
    expect(preview).to_contain_text("Not a valid schedule")
    page.get_by_label("Cron expression").fill("15 6 * * 1")
    expect(preview).to_contain_text("At 06:15, only on Monday")
    screenshot(page, "schedule-builder", tmp_path)

    page.get_by_label("Job class").select_option("demo.echo")
    page.get_by_label("Payload (JSON object)").fill('{"value": "weekly"}')
    page.get_by_label("Name").fill("Weekly echo")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Weekly echo")
    expect(page.locator("main")).to_contain_text("At 06:15, only on Monday")
    expect(page.locator("main")).to_contain_text("15 6 * * 1")
