"""Queue settings in a real browser: the Queues page panel and the admin form, phone and desktop."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.browser.test_schedules_browser import log_in_to

pytestmark = [pytest.mark.browser]

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
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


def _configured_queue(live_server: Any) -> str:
    from app.control import queue_settings
    from app.db import db
    from app.redis_client import get_redis
    from ops_ui.settings import app_settings

    name = f"browser-{uuid.uuid4().hex[:8]}"
    with live_server.app.app_context():
        settings = app_settings()
        client = get_redis(settings.redis_url)
        queue_settings.update_queue(db.session, client, settings, name, {"max_attempts": 4}, "test")
    return name


@pytest.mark.parametrize("width", [1440, 390])
def test_admin_edits_queue_settings_with_errors_shown(
    form_page: Any, make_user: Any, live_server: Any, width: int
) -> None:
    from playwright.sync_api import expect

    page = form_page

    queue = _configured_queue(live_server)
    page.set_viewport_size({"width": width, "height": 900})
    log_in_to(page, make_user("admin"), "/queues")
    row = page.locator(f"#queue-settings-{queue}")
    expect(row).to_contain_text("4")
    assert page.evaluate(OVERFLOW) <= 1
    row.get_by_role("link", name=f"Edit settings of {queue}").click()
    page.wait_for_url(lambda url: url.endswith(f"/queues/{queue}/settings"))
    expect(page.get_by_label("Max attempts (1–100)")).to_have_value("4")
    page.get_by_label("Weight (1–100)").fill("500")
    page.get_by_label("Rate limit (jobs/seconds, e.g. 100/60)").fill("20/60")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved")
    expect(page.locator("#weight-error")).to_contain_text("weight must be from 1 to 100")
    assert page.evaluate(OVERFLOW) <= 1
    page.get_by_label("Weight (1–100)").fill("5")
    page.get_by_label("Max attempts (1–100)").fill("")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(lambda url: url.endswith("/queues"))
    expect(page.get_by_role("status").first).to_contain_text(f"Saved the settings of {queue}")
    row = page.locator(f"#queue-settings-{queue}")
    expect(row).to_contain_text("20 / 60 s")
    expect(row.locator("td").nth(5)).to_have_text("5")
    expect(row.locator("td").nth(0)).to_have_text("3")  # cleared: the default again


def test_a_viewer_sees_settings_without_an_edit_link(page: Any, make_user: Any, live_server: Any) -> None:
    from playwright.sync_api import expect

    queue = _configured_queue(live_server)
    log_in_to(page, make_user("viewer"), "/queues")
    row = page.locator(f"#queue-settings-{queue}")
    expect(row).to_be_visible()
    expect(row.get_by_role("link")).to_have_count(0)
