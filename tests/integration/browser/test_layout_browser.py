"""What an operator saw at 1440 px (issue 13, item 7), proven in a real browser at 1440 px and
at phone width: the Failed page's "Failures by cause" fits its frame with a long exception
message, and the main navigation is one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"

#: The failure-groups table against its frame: [table scrollWidth, frame clientWidth, frame scrollWidth].
TABLE_FIT = """() => {
  const table = document.querySelector('table.failure-groups');
  const frame = table.parentElement;
  return [table.scrollWidth, frame.clientWidth, frame.scrollWidth];
}"""

#: The main navigation's top-level entries (links, and the "More" menu's summary) as
#: [text, top, left, right] in the page (offsetTop of the summary is relative to its
#: <details>, so the box's top is compared), read from the page so new entries are covered too.
NAV_ENTRIES = """() => Array.from(document.querySelectorAll('nav.main-nav > a, nav.main-nav > details > summary'))
  .map(el => { const r = el.getBoundingClientRect();
               return [el.textContent.trim(), Math.round(r.top), r.left, r.right]; })"""

LONG_MESSAGE = (
    "payment gateway https://payments.example.com/v2/charges/ch_3NvQeR2eZvKYlo2C1a7bXgTz?expand=customer"
    "&idempotency=4f1c2d9e-7b1a-4c3e-9f2d-1a2b3c4d5e6f answered 502 Bad Gateway after 3 retries: "
    + "upstream connection reset by peer while reading response header from upstream " * 6
)


def _record_failures(live_server: Any, tenant: str) -> None:
    """Failures the way the recorder writes them: a group with a very long message, and another."""
    from tests.unit.test_api_failures import record_failure

    with live_server.app.app_context():
        for n in range(3):
            record_failure(tenant, "payments", LONG_MESSAGE, 1_700_000_000.0 + n, job_class="shop.payments.charge_card")
        record_failure(tenant, "mail", "mailbox unavailable", 1_700_000_100.0, job_class="mail.send_receipt")


def _assert_group_table_fits(page: Any, width: int) -> None:
    table, frame, frame_scroll = page.evaluate(TABLE_FIT)
    assert table <= frame + 1 and frame_scroll <= frame + 1, f"at {width} px the table is {table} px in {frame} px"
    assert page.evaluate(OVERFLOW) <= 1, f"the Failed page scrolls sideways at {width} px"
    for button in page.get_by_role("button", name="Retry all in group").all():
        assert button.is_visible()
        box = button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (width, box)


def test_failure_groups_fit_the_frame_with_a_long_message_at_1440_and_phone_width(
    page: Any, make_user: Any, live_server: Any, tmp_path: Path
) -> None:
    user = make_user("operator")
    _record_failures(live_server, user.tenant)
    page.set_viewport_size(DESKTOP)
    log_in(page, user)
    page.goto("/failed")
    rows = page.locator("table.failure-groups tbody tr")
    assert rows.count() == 2
    long_row = rows.filter(has_text="shop.payments.charge_card")
    # The type once, the message without a repeated "RuntimeError: " prefix, cut with the whole text at hand.
    assert long_row.locator("code.exception-type").inner_text() == "RuntimeError"
    shown = long_row.locator(".group-message")
    assert not shown.inner_text().startswith("RuntimeError")
    assert shown.get_attribute("title") == LONG_MESSAGE.strip()
    long_row.get_by_text("Full message").click()
    assert long_row.locator("details.full-message pre").is_visible()
    _assert_group_table_fits(page, DESKTOP["width"])
    screenshot(page, "failed-1440", tmp_path)

    page.set_viewport_size(PHONE)
    page.reload()
    _assert_group_table_fits(page, PHONE["width"])
    # The button still works from a phone: it asks, then retries the group.
    page.once("dialog", lambda dialog: dialog.accept())
    long_row = page.locator("table.failure-groups tbody tr").filter(has_text="RuntimeError").first
    long_row.get_by_role("button", name="Retry all in group").click()
    assert page.locator(".flash-success").first.is_visible()


def _assert_nav_is_one_line(page: Any, width: int) -> list[str]:
    entries = page.evaluate(NAV_ENTRIES)
    assert len(entries) >= 5, entries
    tops = {top for _text, top, _left, _right in entries}
    assert len(tops) == 1, f"the navigation wraps at {width} px: {entries}"
    assert max(right for *_rest, right in entries) <= width, entries
    return [text for text, *_rest in entries]


def test_navigation_is_one_line_at_1440_and_usable_on_a_phone(page: Any, make_user: Any, tmp_path: Path) -> None:
    from ops_ui.templating import NAVIGATION

    admin = make_user("admin")  # the most entries
    page.set_viewport_size(DESKTOP)
    log_in(page, admin)
    page.goto("/failed")
    shown = _assert_nav_is_one_line(page, DESKTOP["width"])
    assert "More" in shown[-1]
    # Every page of the navigation is reachable from it: on the line or in "More".
    nav = page.get_by_role("navigation", name="Main")
    links = [t.strip() for t in nav.locator("a").all_text_contents()]
    assert {label for _endpoint, label, _role in NAVIGATION} <= set(links), links
    nav.locator("summary").click()
    users = nav.get_by_role("link", name="Users", exact=True)
    assert users.is_visible()
    users.click()
    page.wait_for_url("**/users")
    # The current page inside "More" is marked on its summary.
    assert "current" in (page.locator("nav.main-nav summary").get_attribute("class") or "")
    screenshot(page, "nav-1440", tmp_path)
    # A 1280 px laptop too.
    page.set_viewport_size({"width": 1280, "height": 800})
    _assert_nav_is_one_line(page, 1280)

    page.set_viewport_size(PHONE)
    page.goto("/jobs")
    assert page.evaluate(OVERFLOW) <= 1, "the header scrolls sideways at phone width"
    nav = page.get_by_role("navigation", name="Main")
    for link in nav.locator(":scope > a").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    nav.locator("summary").click()
    audit = nav.get_by_role("link", name="Audit log", exact=True)
    box = audit.bounding_box()
    assert audit.is_visible() and box is not None and box["x"] + box["width"] <= PHONE["width"]
    assert page.evaluate(OVERFLOW) <= 1, "the open menu scrolls sideways at phone width"
    audit.click()
    page.wait_for_url("**/audit**")
