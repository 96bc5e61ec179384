"""Definitions in a real browser: deactivate with a confirmation, and the buttons at phone width."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.browser.test_schedules_browser import log_in_to

pytestmark = [pytest.mark.browser]

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def test_admin_deactivates_after_confirming_and_keeps_the_buttons_at_phone_width(page: Any, make_user: Any) -> None:
    from playwright.sync_api import expect

    log_in_to(page, make_user("admin"), "/definitions")
    row = page.locator("tr", has_text="demo.echo")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    row.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_role("status")).to_contain_text("demo.echo is inactive")
    assert questions and questions[0].startswith("Deactivate demo.echo?")
    row = page.locator("tr", has_text="demo.echo")
    expect(row).to_contain_text("inactive")
    expect(row).to_contain_text("your tenant's")

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("tr", has_text="demo.echo").get_by_role("button", name="Activate")).to_be_visible()
    assert page.evaluate(OVERFLOW) <= 1
