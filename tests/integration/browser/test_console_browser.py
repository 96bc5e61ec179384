"""The console in a real browser: the flows of issue 6, against a real worker and recorder."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.browser.conftest import log_in

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_log_in_and_out(page: Any, make_user: Any) -> None:
    user = make_user("viewer")
    page.goto("/")
    assert "/login" in page.url  # nothing but the login page without a session
    log_in(page, user)
    assert page.get_by_role("navigation", name="Main").is_visible()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    page.goto("/jobs")
    assert "/login" in page.url


def test_keyboard_only_log_in_skip_link_and_navigation(page: Any, make_user: Any) -> None:
    """No mouse: Tab through the login form, Enter to submit, skip link first, nav reachable."""
    user = make_user("operator")
    page.goto("/login")
    page.get_by_label("E-mail").focus()  # the login page focuses it itself; be explicit
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(user.password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
    for _ in range(40):  # onward through the header to the Jobs link, then follow it
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.textContent.trim()") == "Jobs":
            break
    else:
        raise AssertionError("the Jobs link is not reachable with Tab")
    assert page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    page.wait_for_url("**/jobs")
