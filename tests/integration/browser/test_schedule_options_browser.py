"""The cron builder's dispatch options in a real browser, at phone and desktop widths."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import screenshot
from tests.integration.browser.test_schedules_browser import log_in_to

pytestmark = [pytest.mark.browser, pytest.mark.redis]
#: What Chromium logs for the refused form's answer: the only console error allowed here.
REFUSED = "Failed to load resource: the server responded with a status of 422 (UNPROCESSABLE ENTITY)"


@pytest.fixture()
def form_page(chromium: Any, live_server: Any) -> Iterator[Any]:
    """conftest's `page`, except that the 422 a refused form answers is expected."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert [e for e in errors if e != REFUSED] == [], errors


@pytest.mark.parametrize("width", [1280, 390])
def test_options_show_field_errors_then_save_and_show_on_the_schedule(
    form_page: Any, make_user: Any, tmp_path: Path, width: int
) -> None:
    from playwright.sync_api import expect

    page = form_page

    page.set_viewport_size({"width": width, "height": 900})
    log_in_to(page, make_user("admin"), "/schedules/new")
    page.get_by_label("Cron expression").fill("0 4 * * *")
    page.get_by_label("Job class").select_option("demo.echo")
    page.get_by_label("Queue").fill("reports")
    page.get_by_label("Priority (0-9)").fill("12")
    page.get_by_label("Timeout (seconds)").fill("0")
    page.get_by_label("Max attempts").fill("4")
    page.get_by_label("Tags (comma-separated)").fill("nightly, ops")
    page.get_by_role("button", name="Create schedule").click()
    # Refused: each error next to its field, what was typed kept
    expect(page.locator("main")).to_contain_text("Nothing was saved")
    expect(page.locator("#priority-error")).to_contain_text("priority must be an integer from 0 to 9")
    expect(page.locator("#timeout-error")).to_contain_text("timeout must be at least 1")
    expect(page.get_by_label("Queue")).to_have_value("reports")
    for field in ("#queue", "#priority", "#timeout", "#max_attempts", "#tags"):
        box = page.locator(field).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (field, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    screenshot(page, f"schedule-options-errors-{width}", tmp_path)

    page.get_by_label("Priority (0-9)").fill("8")
    page.get_by_label("Timeout (seconds)").fill("120")
    page.get_by_role("button", name="Create schedule").click()
    main = page.locator("main")
    expect(main).to_contain_text("Schedule created")
    for shown in ("queue=reports", "priority=8", "timeout=120", "max_attempts=4", "tags=nightly, ops"):
        expect(main).to_contain_text(shown)
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Priority (0-9)")).to_have_value("8")
    expect(page.get_by_label("Tags (comma-separated)")).to_have_value("nightly, ops")
