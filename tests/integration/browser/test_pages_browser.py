"""Every page of the navigation in a real browser: renders, labelled controls, phone width.

Also saves the screenshots the README and docs/console.md show (with CELERIAC_SCREENSHOTS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ops_ui.templating import NAVIGATION
from tests.integration.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

#: Controls that have no accessible name: a label, aria-label or aria-labelledby.
UNLABELLED_CONTROLS = """() => Array.from(document.querySelectorAll(
    'input:not([type=hidden]):not([type=submit]), select, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby') && !el.getAttribute('title'))
  .map(el => el.outerHTML.slice(0, 120))"""

#: How far the page is wider than the window (horizontal scrolling of the whole page).
OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


def _pages() -> list[tuple[str, str]]:
    return [(endpoint.split(".", 1)[1], label) for endpoint, label, _role in NAVIGATION]


def _url(page_name: str, app: Any) -> str:
    from flask import url_for

    with app.test_request_context():
        return str(url_for(f"console.{page_name}"))


@pytest.mark.parametrize(("name", "label"), _pages())
def test_page_renders_with_labelled_controls_at_desktop_and_phone_width(
    page: Any, showcase: Any, live_server: Any, tmp_path: Path, name: str, label: str
) -> None:
    log_in(page, showcase.admin)
    page.goto(_url(name, live_server.app))
    assert page.locator("h1").first.is_visible()
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    nav = page.get_by_role("navigation", name="Main")
    if not nav.get_by_text(label, exact=True).first.is_visible():  # admin pages sit in the "More" menu
        nav.locator("details.nav-more > summary").click()
    nav_link = nav.get_by_role("link", name=label, exact=True)
    assert nav_link.get_attribute("aria-current") == "page"
    screenshot(page, name, tmp_path)
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert page.locator("h1").first.is_visible()
    assert page.evaluate(OVERFLOW) <= 1, f"{name} scrolls sideways at phone width"


def test_login_page_screenshot(page: Any, tmp_path: Path) -> None:
    page.goto("/login")
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    screenshot(page, "login", tmp_path)
