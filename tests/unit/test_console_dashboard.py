"""Dashboard (U2, U3): queue figures, workers, recent and failed jobs, charts, health; tenant-scoped."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app import redis_keys
from app.monitoring.workers import Heartbeat, write_heartbeat
from tests.unit.console_data import add_execution, add_finished


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_anonymous_is_sent_to_login(client: Any) -> None:
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_fresh_tenant_is_told_how_to_dispatch_a_first_job(console: Any) -> None:
    page = console(role="viewer", tenant=_tenant()).get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "dispatch your first one" in html and "/api/jobs/dispatch" in html
    assert 'hx-trigger="every 5s"' in html


def test_dashboard_shows_own_tenants_jobs_failures_and_charts_only(console: Any) -> None:
    mine, theirs = _tenant(), _tenant()
    job = add_execution(mine, job_class="mail.Send", status="failed")
    other = add_execution(theirs, job_class="secret.Other", status="completed")
    add_finished(mine, "completed", count=12, minutes_ago=3)
    add_finished(mine, "failed", count=4, minutes_ago=2)
    add_finished(theirs, "failed", count=99, minutes_ago=2)
    html = console(role="viewer", tenant=mine).get("/").get_data(as_text=True)
    assert f"/jobs/{job.id}" in html and "mail.Send" in html
    assert other.id not in html and "secret.Other" not in html
    assert "4 jobs failed in the last hour" in html and 'href="/failed"' in html
    assert ": 99 failed" not in html and ": 4 failed" in html  # charts count this tenant's failures only
    assert "<svg" in html and "series-completed" in html and "series-failed" in html
    assert "dispatch your first one" not in html


def test_superadmin_sees_every_tenants_recent_jobs(console: Any) -> None:
    first, second = add_execution(_tenant()), add_execution(_tenant())
    html = console(role="admin", tenant=None, superadmin=True).get("/").get_data(as_text=True)
    assert first.id in html and second.id in html


def test_htmx_poll_returns_only_the_live_partial(console: Any) -> None:
    session = console(role="viewer", tenant=_tenant())
    part = session.get("/", headers={"HX-Request": "true"})
    html = part.get_data(as_text=True)
    assert part.status_code == 200
    assert "<html" not in html and 'id="dashboard-live"' in html


def test_window_toggle_switches_to_the_last_day_in_15_minute_buckets(console: Any) -> None:
    tenant = _tenant()
    add_finished(tenant, "failed", count=7, minutes_ago=300)  # five hours ago: only in the day window
    session = console(role="viewer", tenant=tenant)
    hour = session.get("/").get_data(as_text=True)
    day = session.get("/?window=day", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "Failures per minute, last hour" in hour and "7 in the last day" in hour
    assert "Failures per 15 minutes, last day" in day and ": 7 failed" in day
    assert ": 7 failed" not in hour
    assert session.get("/?window=year").status_code == 422


def test_workers_and_health_are_summarised(console: Any, redis_client: Any, settings: Any) -> None:
    now = time.time()
    host = f"0-dash-{uuid.uuid4().hex[:8]}@test"  # sorts first: the dashboard lists 8 workers at most
    write_heartbeat(
        redis_client,
        Heartbeat(host, 1, 4, 3, 10, ["default"], [0.1, 0.1, 0.1], 50.0, now - 60, now),
        settings.monitoring,
    )
    html = console(role="viewer", tenant=_tenant()).get("/").get_data(as_text=True)
    assert host in html and "3/4" in html and "workers online" in html
    assert "Health" in html and ("status-healthy" in html or "status-warning" in html or "status-critical" in html)
    redis_client.delete(redis_keys.worker(host))
    redis_client.zrem(redis_keys.WORKERS, host)


def test_health_issues_come_with_recommendations(console: Any, redis_client: Any) -> None:
    redis_client.delete(redis_keys.RECORDER_HEARTBEAT)
    html = console(role="viewer", tenant=_tenant()).get("/").get_data(as_text=True)
    assert "status-critical" in html
    assert "the recorder is not running" in html and "python -m app.recorder" in html


def test_a_poll_costs_the_same_few_queries_however_many_jobs_there_are(console: Any, app: Any) -> None:
    """Cheap on the server: aggregates, live jobs and LIMITed reads; nothing that grows with history."""
    from sqlalchemy import event

    from app.db import db

    tenant = _tenant()
    session = console(role="viewer", tenant=tenant)
    statements: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        statements.append((" ".join(statement.split()).lower(), parameters))

    def poll() -> list[tuple[str, Any]]:
        statements.clear()
        assert session.get("/", headers={"HX-Request": "true"}).status_code == 200
        return list(statements)

    for status in ("completed", "failed", "pending"):
        add_execution(tenant, status=status)
    add_finished(tenant, "completed", count=3, minutes_ago=5)
    event.listen(db.engine, "before_cursor_execute", note)
    try:
        poll()  # warm caches (job definitions, tenants) once
        few = poll()
        for n in range(200):
            add_execution(tenant, status=("completed", "failed", "pending")[n % 3])
        add_finished(tenant, "completed", count=500, minutes_ago=5)
        busy = poll()
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert len(busy) == len(few) and len(busy) < 60
    finished = {"completed", "failed", "cancelled"}
    for sql, parameters in busy:  # job_executions is read only through live statuses or a LIMIT
        if "from job_executions" in sql and "limit" not in sql:
            values = set(parameters.values() if isinstance(parameters, dict) else parameters or ())
            assert "job_executions.status" in sql and not values & finished, (sql, parameters)
