"""Browser tests: Playwright driving Debian's Chromium against a live console.

The console runs in a thread of the test process (werkzeug's threaded server), beside the
session's real worker and recorder. Playwright may not download browsers here, so it
launches /usr/bin/chromium (CELERIAC_CHROMIUM overrides); without it the tests skip,
except under CI=true, where a missing browser fails the run.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT

CHROMIUM = Path(os.environ.get("CELERIAC_CHROMIUM", "/usr/bin/chromium"))
#: Screenshots go here when CELERIAC_SCREENSHOTS names a directory (docs/screenshots for the README).
SCREENSHOT_DIR = os.environ.get("CELERIAC_SCREENSHOTS")

pytestmark = pytest.mark.browser


@dataclass
class LiveServer:
    url: str
    app: Any


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    from werkzeug.serving import make_server

    from ops_ui import create_app

    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield LiveServer(f"http://127.0.0.1:{server.server_port}", app)
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package for the browser tests"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture()
def page(chromium: Any, live_server: LiveServer) -> Iterator[Any]:
    """A fresh browser page at 1280 px; fails the test on any console error (CSP included)."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not _real_errors(errors), f"browser console errors: {errors}"


def _real_errors(errors: list[str]) -> list[str]:
    """Console errors a user would notice: htmx logs a request it aborted itself (a newer
    preview replacing an older one, or the page moving on mid-poll) as two errors; those are
    dropped, a failed response (also logged as "Failed to load resource") is not."""
    if not any(e.startswith("htmx:sendAbort") for e in errors):
        return errors
    return [e for e in errors if not e.startswith(("htmx:sendAbort", "htmx:afterRequest"))]


@pytest.fixture(scope="package", autouse=True)
def recorder_heartbeats(recorder: Any) -> Iterator[None]:
    """The live console sees a running recorder, as under `make run` (health, dashboard)."""
    from app import redis_keys
    from app.config import get_settings
    from app.redis_client import get_redis

    recorder.heartbeats = True
    yield
    recorder.heartbeats = False
    get_redis(get_settings().redis_url).delete(redis_keys.RECORDER_HEARTBEAT)


@dataclass
class ConsoleUser:
    email: str
    password: str
    tenant: str
    role: str


@pytest.fixture()
def make_user(live_server: LiveServer) -> Callable[..., ConsoleUser]:
    from app.db import db
    from app.services.auth import create_user

    def make(role: str = "admin", tenant: str | None = None) -> ConsoleUser:
        tenant = tenant or f"web-{uuid.uuid4().hex[:8]}"
        email, password = f"{role}-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
        with live_server.app.app_context():
            create_user(db.session, email, password, role, tenant)
            db.session.commit()
        return ConsoleUser(email, password, tenant, role)

    return make


def log_in(page: Any, user: ConsoleUser) -> None:
    page.goto("/login")
    page.get_by_label("E-mail").fill(user.email)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url)


def api_headers(live_server: LiveServer, tenant: str, role: str = "operator") -> dict[str, str]:
    from app.db import db
    from app.services.auth import create_token

    with live_server.app.app_context():
        token = create_token(db.session, tenant, role, name="browser-test")
        db.session.commit()
    return {"Authorization": f"Bearer {token.raw}"}


def screenshot(page: Any, name: str, tmp_path: Path) -> Path:
    """Save a full-page screenshot: to docs/screenshots when asked, else under tmp_path."""
    folder = (ROOT / SCREENSHOT_DIR) if SCREENSHOT_DIR else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Showcase:
    """A tenant with some history (completed, failed, retried jobs; a batch, a chain, a schedule)."""

    admin: ConsoleUser
    headers: dict[str, str]
    job_ids: list[str]


@pytest.fixture(scope="session")
def showcase(live_server: LiveServer, worker: Any, recorder: Any) -> Showcase:
    """Seed the showcase tenant through the API and wait until the worker has run it all."""
    from tests.conftest import wait_for

    tenant = f"showcase-{uuid.uuid4().hex[:6]}"
    admin = ConsoleUser(f"admin-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery", tenant, "admin")
    from app.db import db
    from app.services.auth import create_user

    with live_server.app.app_context():
        create_user(db.session, admin.email, admin.password, "admin", tenant)
        db.session.commit()
    headers = api_headers(live_server, tenant, "admin")
    client = live_server.app.test_client()

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = client.post(path, json=body, headers=headers)
        assert answer.status_code in (200, 201, 202), (path, answer.get_data(as_text=True))
        result: dict[str, Any] = answer.get_json()
        return result

    ids = [post("/api/jobs/dispatch", {"job_class": "demo.echo", "payload": {"value": i}})["id"] for i in range(6)]
    ids += [post("/api/jobs/dispatch", {"job_class": "demo.add", "payload": {"x": i, "y": 2}})["id"] for i in range(3)]
    ids.append(post("/api/jobs/dispatch", {"job_class": "demo.sleep", "payload": {"seconds": 0.2}})["id"])
    fail = {
        "job_class": "demo.fail",
        "payload": {"message": "card declined for order 42"},
        "options": {"max_attempts": 1},
    }
    ids += [post("/api/jobs/dispatch", fail)["id"] for _ in range(2)]
    batch = post(
        "/api/batches",
        {"name": "nightly import", "jobs": [{"job_class": "demo.echo", "payload": {"value": n}} for n in range(5)]},
    )
    ids += batch["job_ids"]
    chain = post("/api/chains", {"name": "report", "jobs": [{"job_class": "demo.echo", "payload": {"value": 1}}] * 3})
    ids += chain["job_ids"]
    schedule = {"job_class": "demo.echo", "cron": "*/15 * * * *", "timezone": "Europe/Berlin", "payload": {}}
    post("/api/schedules", schedule)

    def all_done() -> bool:
        for job_id in ids:
            status = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()["status"]
            if status not in ("completed", "failed", "cancelled"):
                return False
        return True

    wait_for(all_done, timeout=90, what="showcase jobs finished")
    return Showcase(admin, headers, ids)
