"""The console's Scheduled tab: delayed and long-delayed jobs, "run now" and cancel."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.kernel.scheduled import ScheduledSet
from app.models import AuditLog, JobExecution
from tests.conftest import page_csrf_token
from tests.job_rows import add_job

pytestmark = [pytest.mark.usefixtures("twins"), pytest.mark.redis]


@pytest.fixture()
def tenant(unique: str) -> str:
    return f"sc-{unique}"


def audit(action: str, target: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)))


def delayed(tenant: str, due_in_s: float, held: bool) -> str:
    due = datetime.now(UTC) + timedelta(seconds=due_in_s)
    return add_job(tenant, "pending", eta=due, due_at=due if held else None, published_at=None if held else due)


def test_viewer_sees_delayed_and_held_jobs_soonest_first_without_actions(console: Any, tenant: str) -> None:
    week = delayed(tenant, 7 * 24 * 3600, held=True)
    soon = delayed(tenant, 30, held=False)
    day = delayed(tenant, 24 * 3600, held=True)
    ready = add_job(tenant, "pending")
    foreign = delayed(f"{tenant}-other", 60, held=True)
    viewer = console(role="viewer", tenant=tenant)
    html = viewer.get("/scheduled").get_data(as_text=True)
    assert html.index(soon) < html.index(day) < html.index(week)
    assert ready not in html and foreign not in html
    assert "3 delayed jobs" in html and "broker ETA" in html and "scheduled set" in html
    assert "status-delayed" in html and "<time datetime=" in html  # shown in the browser's local time
    assert "/run-now" not in html and "/cancel" not in html
    assert viewer.post(f"/scheduled/{day}/run-now").status_code == 403
    assert viewer.post(f"/scheduled/{day}/cancel").status_code == 403


def test_operator_runs_a_held_job_now_audited(console: Any, tenant: str, redis_client: Any) -> None:
    job = delayed(tenant, 24 * 3600, held=True)
    operator = console(role="operator", tenant=tenant)
    html = operator.get("/scheduled").get_data(as_text=True)
    assert f"/scheduled/{job}/run-now" in html
    answer = operator.post(f"/scheduled/{job}/run-now", data={"reason": "customer waiting"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/scheduled")
    db.session.expire_all()
    row = db.session.get(JobExecution, job)
    assert row.due_at is not None and row.due_at <= datetime.now(UTC)
    assert ScheduledSet(redis_client).scores([job]) == [pytest.approx(time.time(), abs=5)]
    [entry] = audit("job.run_now", job)
    assert entry.outcome == "ok" and entry.reason == "customer waiting"


def test_run_now_of_a_job_that_does_not_wait_is_refused_and_audited(console: Any, tenant: str) -> None:
    job = delayed(tenant, 60, held=False)
    operator = console(role="operator", tenant=tenant)
    answer = operator.post(f"/scheduled/{job}/run-now", follow_redirects=True)
    assert "Not released" in answer.get_data(as_text=True)
    [entry] = audit("job.run_now", job)
    assert entry.outcome == "refused"
    assert operator.post(f"/scheduled/{delayed(tenant + 'x', 60, held=True)}/run-now").status_code == 404


def test_operator_cancels_a_held_job(console: Any, tenant: str, twins: Any) -> None:
    job = delayed(tenant, 3600, held=True)
    answer = console(role="operator", tenant=tenant).post(f"/scheduled/{job}/cancel")
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(JobExecution, job).status == "cancelled"
    assert job in twins.canceller.marked
    [entry] = audit("job.cancel", job)
    assert entry.before == {"status": "pending"} and entry.after == {"status": "cancelled"}


def test_a_post_without_its_csrf_token_is_refused(console: Any, tenant: str) -> None:
    job = delayed(tenant, 3600, held=True)
    operator = console(role="operator", tenant=tenant)
    assert page_csrf_token(operator.get("/scheduled").get_data(as_text=True))
    assert operator.post(f"/scheduled/{job}/cancel", data={"csrf_token": "forged"}, csrf=False).status_code == 400


def test_the_job_page_shows_a_held_jobs_due_time(console: Any, tenant: str) -> None:
    job = delayed(tenant, 3600, held=True)
    html = console(role="viewer", tenant=tenant).get(f"/jobs/{job}").get_data(as_text=True)
    assert "job-due" in html and "scheduled set" in html
