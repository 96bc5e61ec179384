"""`POST /api/jobs/bulk`: roles, validation, preview, and the bulk job it starts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobExecution
from app.services import bulk_jobs
from tests.conftest import assert_problem
from tests.job_rows import add_job


def _post(client: Any, headers: dict[str, str], body: Any, preview: bool = False) -> Any:
    return client.post("/api/jobs/bulk" + ("?preview=1" if preview else ""), json=body, headers=headers)


def test_preview_counts_every_match_of_the_tenant_and_shows_five_newest(client: Any, auth: Any, unique: str) -> None:
    tenant = f"t{unique}"
    ids = [add_job(tenant, "failed", minutes=n, queue="mail") for n in range(7)]
    add_job(tenant, "completed", queue="mail")  # not retryable
    add_job(tenant, "failed", queue="other")
    add_job(f"x{unique}", "failed", queue="mail")  # another tenant's
    body = {"action": "retry", "filter": {"queue": "mail"}}
    answer = _post(client, auth("operator", tenant), body, preview=True)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"count": 7, "sample": list(reversed(ids))[:5]}
    purge = _post(client, auth("admin", tenant), {"action": "purge", "filter": {"queue": "mail"}}, preview=True)
    assert purge.get_json()["count"] == 8


def test_system_false_leaves_celeriacs_own_maintenance_tasks_out(client: Any, auth: Any, unique: str) -> None:
    tenant = f"t{unique}"
    mine = add_job(tenant, "failed")
    add_job(tenant, "failed", job_class="celeriac.maintenance.purge_history")
    headers = auth("operator", tenant)
    assert _post(client, headers, {"action": "retry"}, preview=True).get_json()["count"] == 2
    hidden = _post(client, headers, {"action": "retry", "filter": {"system": False}}, preview=True).get_json()
    assert hidden == {"count": 1, "sample": [mine]}
    assert_problem(_post(client, headers, {"action": "retry", "filter": {"system": "no"}}, preview=True), 422)


@pytest.mark.parametrize(
    ("role", "action", "status"),
    [("viewer", "retry", 403), ("operator", "purge", 403), ("operator", "cancel", 200), ("admin", "purge", 200)],
)
def test_roles(client: Any, auth: Any, unique: str, role: str, action: str, status: int) -> None:
    answer = _post(client, auth(role, f"t{unique}"), {"action": action}, preview=True)
    assert answer.status_code == status


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ([], 400),
        ({}, 400),
        ({"action": 3}, 400),
        ({"action": "explode"}, 422),
        ({"action": "retry", "filter": {"colour": "red"}}, 422),
        ({"action": "retry", "filter": {"queue": 5}}, 422),
        ({"action": "retry", "filter": {"status": "pending"}}, 422),
        ({"action": "retry", "filter": {"created_before": "yesterday"}}, 422),
        (
            {
                "action": "retry",
                "filter": {"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"},
            },
            422,
        ),
        ({"action": "retry", "filter": {"queue": "a\u0000b"}}, 422),
        ({"action": "retry", "reason": "x" * 501}, 422),
    ],
)
def test_bad_bodies_answer_problems(client: Any, auth: Any, body: Any, status: int) -> None:
    assert_problem(_post(client, auth("admin"), body), status)


def test_start_answers_the_bulk_jobs_id_and_audits_the_request(
    client: Any, auth: Any, unique: str, recording_publisher: list[Any]
) -> None:
    tenant = f"t{unique}"
    answer = _post(client, auth("operator", tenant), {"action": "cancel", "filter": {"tag": "x"}, "reason": "r"})
    assert answer.status_code == 202, answer.get_json()
    job_id = answer.get_json()["id"]
    row = db.session.get(JobExecution, job_id)
    assert row is not None and row.job_class == "celeriac.bulk" and row.tenant_id == tenant
    entry = db.session.scalars(select(AuditLog).where(AuditLog.target_id == job_id)).one()
    assert entry.action == "job.bulk_requested" and entry.before["filter"] == {"tag": "x"}
    # The payload is signed for this tenant: another tenant (or an edited payload) cannot run it.
    assert bulk_jobs.signed_request(row.payload, tenant, _secret()).action == "cancel"
    with pytest.raises(bulk_jobs.ValidationError):
        bulk_jobs.signed_request(row.payload, "other", _secret())
    with pytest.raises(bulk_jobs.ValidationError):
        bulk_jobs.signed_request({**row.payload, "action": "purge"}, tenant, _secret())


def _secret() -> str:
    from ops_ui.settings import app_settings

    return str(app_settings().secret_key)
