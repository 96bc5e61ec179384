"""A running job's live progress bar on its page, at desktop and phone width."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import api_headers, log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]

OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"


@pytest.mark.parametrize("width", [1280, 390])
def test_job_page_shows_a_live_progress_bar_until_100(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    user = make_user("viewer")
    headers = api_headers(live_server, user.tenant)
    answer = live_server.app.test_client().post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.progress", "payload": {"steps": 6, "seconds": 1}},
        headers=headers,
    )
    job_id = answer.get_json()["id"]
    log_in(page, user)
    page.goto(f"/jobs/{job_id}")
    page.evaluate("() => { window.notReloaded = true; }")
    # Given a job reporting after each step, the bar appears and moves without a reload.
    page.wait_for_function(
        "() => { const b = document.querySelector('#job-progress-bar'); return b && b.value > 0 && b.value < 100; }",
        timeout=30_000,
    )
    text = page.locator("#job-progress-text").inner_text()
    assert re.search(r"\d+% · \d of 6", text) and "step " in text, text
    assert page.evaluate(OVERFLOW) <= 1, "the job page scrolls sideways"
    screenshot(page, f"job-progress-{width}", tmp_path)
    page.locator("#job-title .status-completed").wait_for(timeout=30_000)
    assert page.locator("#job-progress-bar").get_attribute("value") == "100"
    assert "100% · 6 of 6" in page.locator("#job-progress-text").inner_text()
    assert page.evaluate("() => window.notReloaded") is True
