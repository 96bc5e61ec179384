"""The console's "Purge all matching" (admins): preview, confirmation, the tracked bulk purge."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.backends.current import backends
from app.db import db
from app.models import AuditLog, JobAttempt, JobExecution
from app.services import bulk_jobs
from app.services.bulk_actions import BulkOutcome
from ops_ui.settings import app_settings
from tests.job_rows import T0, add_job


@pytest.fixture()
def tenant(app: Any, unique: str) -> str:
    return f"cp-{unique}"


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def audit(action: str, tenant: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.tenant_id == tenant)))


def remaining(tenant: str) -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(select(JobExecution.id).where(JobExecution.tenant_id == tenant)))


def with_attempt(job_id: str) -> str:
    db.session.add(
        JobAttempt(execution_id=job_id, attempt_key=uuid.uuid4().hex, number=1, status="failed", started_at=T0)
    )
    db.session.commit()
    return job_id


def run_bulk_job(job_id: str, tenant: str) -> BulkOutcome:
    """What the `celeriac.bulk` worker does with the job the console started (tasks/bulk.py;
    with a real worker in tests/integration/browser/test_bulk_browser.py)."""
    row = db.session.get(JobExecution, job_id)
    assert row is not None
    request = bulk_jobs.signed_request(row.payload, tenant, app_settings().secret_key)
    used = backends()
    found = bulk_jobs.Backends(used.registry, used.publisher, used.canceller, app_settings())
    return bulk_jobs.run(db.session, request, found, lambda done, total: None, lambda: False)


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_see_purge_and_others_are_refused(
    console: Any, tenant: str, role: str, recording_publisher: list[Any]
) -> None:
    done = add_job(tenant, "completed")
    user = console(role=role, tenant=tenant)
    assert "Purge all matching" not in html(user.get("/jobs"))
    assert user.get("/jobs/bulk/purge/preview").status_code == 403
    assert user.post("/jobs/bulk/purge", data={"queue": "default"}).status_code == 403
    assert recording_publisher == [] and remaining(tenant) == {done}
    assert audit("job.bulk_requested", tenant) == []
    assert "Purge all matching" in html(console(role="admin", tenant=tenant).get("/jobs"))


def test_anonymous_is_sent_to_login_and_a_post_without_csrf_is_refused(client: Any, console: Any, tenant: str) -> None:
    response = client.get("/jobs/bulk/purge/preview")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/jobs/bulk/purge").status_code == 400
    done = add_job(tenant, "completed")
    admin = console(role="admin", tenant=tenant)
    assert admin.post("/jobs/bulk/purge", data={}, csrf=False).status_code == 400
    assert remaining(tenant) == {done}


# --- preview, confirmation, the purge --------------------------------------------------------


def test_purge_all_matching_previews_finished_jobs_then_the_bulk_job_deletes_them(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    finished = {
        with_attempt(add_job(tenant, status, minutes=n, queue="mail"))
        for n, status in enumerate(["completed", "failed", "cancelled", "completed"])
    }
    live = {add_job(tenant, status, minutes=10 + n, queue="mail") for n, status in enumerate(["pending", "processing"])}
    other_queue = add_job(tenant, "completed", minutes=20, queue="reports")
    admin = console(role="admin", tenant=tenant)
    page = html(admin.get("/jobs?queue=mail"))
    link = re.search(r'href="(/jobs/bulk/purge/preview\?[^"]*)"', page)
    assert link and "queue=mail" in link.group(1)
    preview = html(admin.get(link.group(1).replace("&amp;", "&")))
    assert re.search(r'id="preview-count">4<', preview)
    assert "cannot be undone" in preview and "attempts" in preview
    assert "cancelled, completed, failed" in preview
    assert len(re.findall(r"<li><a href=\"/jobs/", preview)) == 4 and all(j in preview for j in finished)
    assert 'data-confirm="Delete 4 finished jobs' in preview and "Purge 4 jobs" in preview
    assert recording_publisher == [] and len(remaining(tenant)) == 7  # a preview changes nothing
    # Confirmed: the tracked bulk job starts, audited with the filter and the reason.
    response = admin.post("/jobs/bulk/purge", data={"queue": "mail", "reason": "tidy up"})
    [bulk] = recording_publisher
    assert bulk.job_class == "celeriac.bulk" and bulk.tenant_id == tenant
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/jobs/{bulk.job_id}")
    [entry] = audit("job.bulk_requested", tenant)
    assert entry.target_id == bulk.job_id and entry.reason == "tidy up"
    assert entry.before == {"filter": {"queue": "mail", "system": False}, "action": "purge"}
    outcome = run_bulk_job(bulk.job_id, tenant)
    assert outcome.done == 4 and outcome.error is None
    assert remaining(tenant) == live | {other_queue, bulk.job_id}
    assert db.session.scalar(select(func.count()).where(JobAttempt.execution_id.in_(finished))) == 0
    assert "nothing to purge" in html(admin.get("/jobs/bulk/purge/preview?queue=mail"))


def test_the_show_system_jobs_choice_is_kept(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    mine = add_job(tenant, "completed")
    system = add_job(tenant, "completed", minutes=1, job_class="celeriac.maintenance.purge_history")
    admin = console(role="admin", tenant=tenant)
    assert re.search(r'id="preview-count">1<', html(admin.get("/jobs/bulk/purge/preview")))
    shown = html(admin.get("/jobs/bulk/purge/preview?system=1"))
    assert re.search(r'id="preview-count">2<', shown) and '<input type="hidden" name="system" value="1">' in shown
    admin.post("/jobs/bulk/purge", data={})
    assert run_bulk_job(recording_publisher[0].job_id, tenant).done == 1
    assert system in remaining(tenant) and mine not in remaining(tenant)
    admin.post("/jobs/bulk/purge", data={"system": "1"})
    assert run_bulk_job(recording_publisher[1].job_id, tenant).done == 1
    assert system not in remaining(tenant)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"from": "someday"}, "fix the filter first"),
        ({"status": "pending"}, "purge applies to jobs that are"),
        ({"id": "abcdef12"}, "clear the job id"),
    ],
)
def test_filters_a_purge_cannot_take_change_nothing(
    console: Any, tenant: str, recording_publisher: list[Any], form: dict[str, str], message: str
) -> None:
    done = add_job(tenant, "completed")
    admin = console(role="admin", tenant=tenant)
    response = admin.post("/jobs/bulk/purge", data=form)
    assert response.status_code == 302
    assert message in html(admin.get("/jobs"))
    assert recording_publisher == [] and remaining(tenant) == {done}
    assert admin.get("/jobs/bulk/purge/preview", query_string=form).status_code == 302


def test_a_superadmin_picks_a_tenant_first(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    done = add_job(tenant, "completed")
    root = console(role="admin", tenant=None, superadmin=True)
    root.post("/jobs/bulk/purge", data={})
    assert "pick a tenant" in html(root.get("/jobs")) and recording_publisher == []
    preview = html(root.get(f"/jobs/bulk/purge/preview?tenant={tenant}"))
    assert re.search(r'id="preview-count">1<', preview) and done in preview
    root.post("/jobs/bulk/purge", data={"tenant": tenant})
    assert run_bulk_job(recording_publisher[0].job_id, tenant).done == 1
    assert done not in remaining(tenant)
