"""Console Queues and Workers pages (W2): access matrix, CSRF, audit rows, live partials, tenant scope.

Broadcasts to workers go to the in-memory worker control (app.backends.twins).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import select

from app.backends.current import Backends
from app.config import MonitoringConfig
from app.control import pauses
from app.db import db
from app.models import AuditLog
from app.monitoring.workers import Heartbeat, write_heartbeat
from app.ratelimit import queue_limits
from tests.unit.console_data import add_execution

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("twins")]


def audit_rows(action: str, target: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)))


@pytest.fixture()
def queue(redis_client: Any, unique: str) -> str:
    """A queue no worker of other tests consumes, known through its rate limit."""
    name = f"page-{unique}"
    queue_limits.set_limit(redis_client, name, 7, 60)
    return name


@pytest.fixture()
def worker_entry(redis_client: Any, unique: str) -> str:
    """A worker in the registry (a heartbeat just written); nothing listens for its commands."""
    hostname = f"page-{unique}@host"
    now = time.time()
    beat = Heartbeat(hostname, 31337, 3, 1, 1234, ["default", f"page-{unique}"], [0.5, 0.4, 0.3], 88.5, now - 90, now)
    write_heartbeat(redis_client, beat, MonitoringConfig())
    return hostname


def test_pages_need_login(client: Any, worker_entry: str) -> None:
    for path in ("/queues", "/workers", f"/workers/{worker_entry}"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/login" in answer.headers["Location"], path
    assert client.post("/queues/default/pause").status_code in (302, 400)


def test_viewer_sees_queues_with_stats_but_may_not_pause(console: Any, queue: str, redis_client: Any) -> None:
    add_execution("acme", queue=queue, status="pending", age_s=30)
    viewer = console(role="viewer")
    page = viewer.get("/queues")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and queue in html and "7 / 60 s" in html
    assert "Pause</button>" not in html
    assert viewer.post(f"/queues/{queue}/pause", data={"reason": "x"}).status_code == 403
    assert not pauses.is_paused(redis_client, queue)
    partial = viewer.get("/queues", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert queue in partial and "<html" not in partial


def test_admin_pauses_and_resumes_with_reason_confirmation_and_audit(
    console: Any, queue: str, redis_client: Any
) -> None:
    admin = console(role="admin")
    html = admin.get("/queues").get_data(as_text=True)
    assert f'data-confirm="Pause queue {queue} for every worker and tenant?"' in html
    assert admin.post(f"/queues/{queue}/pause", data={"reason": "db upgrade"}, csrf=False).status_code == 400
    assert not pauses.is_paused(redis_client, queue)

    paused = admin.post(f"/queues/{queue}/pause", data={"reason": "db upgrade"})
    assert paused.status_code == 302 and pauses.is_paused(redis_client, queue)
    [row] = audit_rows("queue.pause", queue)
    assert row.actor == f"user:{admin.user_id}" and row.reason == "db upgrade" and row.after == {"paused": True}
    html = admin.get("/queues").get_data(as_text=True)
    assert "Paused " + queue in html  # the flash message
    assert "status-paused" in html and "db upgrade" in html and "Resume</button>" in html
    assert f"by {admin.email}" in html

    assert admin.post(f"/queues/{queue}/resume", data={}).status_code == 302
    assert not pauses.is_paused(redis_client, queue)
    assert audit_rows("queue.resume", queue)[0].before == {"paused": True}
    assert admin.post("/queues/never-heard-of-it/pause", data={}).status_code == 404
    bad = admin.post("/queues/bad name!/pause", data={}, follow_redirects=True)
    assert "queue must be" in bad.get_data(as_text=True)


def test_a_tenant_sees_only_its_own_queues_counts(console: Any, unique: str) -> None:
    theirs = f"theirs-{unique}"
    add_execution(f"other-{unique}", queue=theirs, status="pending")
    assert theirs not in console(role="admin").get("/queues").get_data(as_text=True)
    assert theirs in console(role="viewer", tenant=None, superadmin=True).get("/queues").get_data(as_text=True)


def test_viewer_sees_workers_and_a_worker_but_no_controls(console: Any, worker_entry: str) -> None:
    viewer = console(role="viewer")
    html = viewer.get("/workers").get_data(as_text=True)
    assert worker_entry in html and "status-online" in html and "88.5 MB" in html
    partial = viewer.get("/workers", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert worker_entry in partial and "<html" not in partial
    detail = viewer.get(f"/workers/{worker_entry}").get_data(as_text=True)
    assert "pid 31337" in detail and "Grow pool" not in detail
    assert viewer.post(f"/workers/{worker_entry}/pool-grow", data={"n": "1"}).status_code == 403
    assert console(role="operator").post(f"/workers/{worker_entry}/shutdown", data={}).status_code == 403
    assert viewer.get("/workers/nobody@nowhere").status_code == 404


def test_admin_worker_actions_show_form_errors_and_audit(console: Any, worker_entry: str, twins: Backends) -> None:
    admin = console(role="admin")
    detail = admin.get(f"/workers/{worker_entry}").get_data(as_text=True)
    assert "Grow pool" in detail and "Restart needs supervisord" in detail
    bad = admin.post(f"/workers/{worker_entry}/pool-grow", data={"n": "0"})
    assert bad.status_code == 422 and "n must be a whole number from 1 to 64" in bad.get_data(as_text=True)
    wrong = admin.post(f"/workers/{worker_entry}/cancel-consumer", data={"queue": "low"})
    assert wrong.status_code == 422 and "does not consume" in wrong.get_data(as_text=True)
    restart = admin.post(f"/workers/{worker_entry}/restart", data={})
    assert restart.status_code == 409 and "CELERIAC_SUPERVISOR_URL" in restart.get_data(as_text=True)
    assert audit_rows("worker.pool_grow", worker_entry) == audit_rows("worker.restart", worker_entry) == []
    assert admin.post(f"/workers/{worker_entry}/shutdown", data={}, csrf=False).status_code == 400
    assert admin.post(f"/workers/{worker_entry}/explode", data={}).status_code == 404
    assert admin.post("/workers/nobody@nowhere/shutdown", data={}).status_code == 404

    stopped = admin.post(f"/workers/{worker_entry}/shutdown", data={"reason": "scale down"})
    assert stopped.status_code == 302
    [row] = audit_rows("worker.shutdown", worker_entry)
    assert row.reason == "scale down" and row.after["status"] == "accepted"
    assert twins.workers.sent == [("shutdown", {"destination": [worker_entry]})]  # type: ignore[attr-defined]
