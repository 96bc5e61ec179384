"""The console's Retries tab: jobs waiting for their next attempt, "retry now" and cancel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobExecution
from tests.job_rows import add_job

pytestmark = pytest.mark.usefixtures("twins")


@pytest.fixture()
def tenant(unique: str) -> str:
    return f"rt-{unique}"


def audit(action: str, target: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)))


def waiting(tenant: str, due_in_s: float = 120, **fields: Any) -> str:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "attempts": 1,
        "max_attempts": 3,
        "error_message": "RuntimeError: card declined",
        "eta": now + timedelta(seconds=due_in_s),
        "updated_at": now,
    }
    values.update(fields)
    return add_job(tenant, "retrying", **values)


def test_viewer_sees_own_tenants_waiting_retries_soonest_first_without_actions(console: Any, tenant: str) -> None:
    later = waiting(tenant, due_in_s=600)
    sooner = waiting(tenant, due_in_s=60, attempts=2, error_message="TimeoutError: gateway slow")
    foreign = waiting(f"{tenant}-other")
    add_job(tenant, "failed")
    viewer = console(role="viewer", tenant=tenant)
    html = viewer.get("/retries").get_data(as_text=True)
    assert html.index(sooner) < html.index(later)
    assert foreign not in html
    assert "2 / 3" in html and "TimeoutError: gateway slow" in html and "2 jobs waiting for a retry" in html
    assert "/run-now" not in html and "/cancel" not in html
    assert viewer.post(f"/retries/{sooner}/run-now").status_code == 403
    assert viewer.post(f"/retries/{sooner}/cancel").status_code == 403


def test_superadmin_sees_every_tenant_with_its_name(console: Any, tenant: str) -> None:
    job = waiting(tenant)
    html = console(role="admin", tenant=None, superadmin=True).get("/retries").get_data(as_text=True)
    assert job in html and tenant in html


def test_stale_eta_reads_as_in_its_queue(console: Any, tenant: str) -> None:
    waiting(tenant, due_in_s=-300)
    html = console(role="viewer", tenant=tenant).get("/retries").get_data(as_text=True)
    assert "now: in its queue" in html


def test_retry_now_cancels_the_waiting_attempt_and_runs_a_new_job(console: Any, tenant: str, twins: Any) -> None:
    job = waiting(tenant)
    answer = console(tenant=tenant).post(f"/retries/{job}/run-now", data={"reason": "customer waiting"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/retries")
    db.session.expire_all()
    assert db.session.get(JobExecution, job).status == "cancelled"
    new = db.session.scalars(select(JobExecution).where(JobExecution.retry_of == job)).one()
    assert new.status == "pending" and new.tenant_id == tenant
    assert [p.job_id for p in twins.publisher.published] == [new.id]
    assert job in twins.canceller.marked
    [row] = audit("job.retry_now", job)
    assert row.after == {"retry_id": new.id} and row.reason == "customer waiting"


def test_retry_now_of_a_job_no_longer_waiting_is_refused_and_audited(console: Any, tenant: str, twins: Any) -> None:
    job = add_job(tenant, "processing")
    operator = console(tenant=tenant)
    answer = operator.post(f"/retries/{job}/run-now", follow_redirects=True)
    assert "Not retried" in answer.get_data(as_text=True)
    assert twins.publisher.published == []
    [row] = audit("job.retry_now", job)
    assert row.outcome == "refused"


def test_cancel_from_retries_is_audited(console: Any, tenant: str, twins: Any) -> None:
    job = waiting(tenant)
    answer = console(tenant=tenant).post(f"/retries/{job}/cancel", follow_redirects=True)
    assert "cancelled: it will not be retried" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(JobExecution, job).status == "cancelled"
    [row] = audit("job.cancel", job)
    assert row.before == {"status": "retrying"}


def test_actions_need_csrf_and_the_tenants_own_job(console: Any, tenant: str, twins: Any) -> None:
    job = waiting(tenant)
    operator = console(tenant=tenant)
    assert operator.post(f"/retries/{job}/cancel", csrf=False).status_code == 400
    stranger = console(tenant=f"{tenant}-other")
    assert stranger.post(f"/retries/{job}/cancel").status_code == 404
    assert stranger.post(f"/retries/{job}/run-now").status_code == 404
    db.session.expire_all()
    assert db.session.get(JobExecution, job).status == "retrying"
