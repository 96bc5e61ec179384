"""Queue pause / resume and the worker pages in a real browser (W2), beside the session's real worker."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser.conftest import log_in, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_pause_and_resume_a_queue_and_see_it_live(
    page: Any, make_user: Any, live_server: Any, stack: Any, tmp_path: Path, redis_client: Any, unique: str
) -> None:
    from app.control import pauses
    from app.ratelimit import queue_limits

    queue = f"browser-{unique}"  # a queue of its own: the session worker's queues keep running
    queue_limits.set_limit(redis_client, queue, 50, 60)
    log_in(page, make_user("admin"))
    page.goto("/queues")
    row = page.locator(f"#queue-{queue}")
    assert row.get_by_text("active").is_visible()
    page.on("dialog", lambda dialog: dialog.accept())  # the "Pause queue ...?" confirmation
    row.get_by_label(f"Reason to pause {queue} (optional)").fill("browser test")
    row.get_by_role("button", name="Pause").click()
    page.get_by_text(f"Paused {queue}").wait_for()
    assert pauses.is_paused(redis_client, queue)
    assert page.locator(f"#queue-{queue}").get_by_text("browser test").is_visible()
    screenshot(page, "queues", tmp_path)
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the action column stays
    assert page.locator(f"#queue-{queue}").get_by_role("button", name="Resume").is_visible()
    screenshot(page, "queues_phone", tmp_path)
    page.set_viewport_size({"width": 1280, "height": 900})

    page.locator(f"#queue-{queue}").get_by_role("button", name="Resume").click()
    page.get_by_text(f"Resumed {queue}").wait_for()
    assert not pauses.is_paused(redis_client, queue)

    # Paused elsewhere (CLI, API, another operator): the table shows it without a reload.
    pauses.pause(redis_client, queue, "cli", "from elsewhere")
    try:
        page.locator(f"#queue-{queue}").get_by_text("from elsewhere").wait_for(timeout=12_000)
    finally:
        pauses.resume(redis_client, queue, "test")


def test_workers_list_and_a_workers_page(page: Any, make_user: Any, stack: Any, tmp_path: Path) -> None:
    hostname = f"test-worker@{socket.gethostname()}"  # the session worker (tests/integration/conftest.py)
    log_in(page, make_user("admin"))
    page.goto("/workers")
    page.get_by_role("link", name=hostname).wait_for(timeout=15_000)
    screenshot(page, "workers", tmp_path)
    page.get_by_role("link", name=hostname).click()
    page.get_by_role("heading", name=hostname).wait_for()
    assert page.get_by_role("button", name="Grow pool").is_visible()
    assert page.get_by_label("Processes to add or remove (1–64)").is_visible()
    screenshot(page, "worker", tmp_path)
