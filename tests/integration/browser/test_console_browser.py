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
