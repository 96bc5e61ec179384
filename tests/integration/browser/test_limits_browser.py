"""The Queues page's concurrency limits panel in a real browser, at phone and desktop widths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from celeriac.concurrency import Slots, scoped_key
from tests.integration.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.mark.parametrize("width", [1280, 390])
def test_an_admin_sees_live_usage_and_raises_a_limit(
    page: Any, make_user: Any, redis_client: Any, tmp_path: Path, width: int, unique: str
) -> None:
    from playwright.sync_api import expect

    admin = make_user("admin")
    key = f"user:{unique}"
    slots = Slots(redis_client)
    scoped = scoped_key(admin.tenant, key)
    slots.acquire(scoped, "holder", limit=1, lease_s=600, message=None)
    slots.acquire(scoped, "waiter", limit=1, lease_s=600, message=None)
    slots.acquire(scoped, "waiter", limit=1, lease_s=600, message='{"task": "demo.echo", "options": {}}')
    page.set_viewport_size({"width": width, "height": 900})
    log_in(page, admin)
    page.goto("/queues")
    panel = page.locator("#queue-limits")
    row = panel.locator("tr", has_text=key)
    expect(row).to_be_visible()
    expect(row.locator('[data-label="Running"]')).to_have_text("1")
    expect(row.locator('[data-label="Waiting"]')).to_have_text("1")
    panel.get_by_label("Key", exact=True).fill(key)
    panel.get_by_label("Limit", exact=True).fill("2")
    for field in ("Key", "Limit"):
        box = panel.get_by_label(field, exact=True).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (field, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    panel.get_by_role("button", name="Set limit").click()
    expect(page.locator("main")).to_contain_text(f"Concurrency limit of {key} set to 2")
    # The waiter was promoted to the freed slot at once (its message went to its queue).
    row = page.locator("#queue-limits tr", has_text=key)
    expect(row.locator('[data-label="Limit"]')).to_have_text("2")
    expect(row.locator('[data-label="Running"]')).to_have_text("2")
    expect(row.locator('[data-label="Waiting"]')).to_have_text("0")
    screenshot(page, f"queue-limits-{width}", tmp_path)
