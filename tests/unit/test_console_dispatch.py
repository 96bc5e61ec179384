"""The console's dispatch form: operators only, CSRF, the API's checks as form errors, audited."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobExecution

pytestmark = pytest.mark.usefixtures("twins", "definitions")


@pytest.fixture()
def definitions(app: Any) -> None:
    """Definitions as the recorder writes them at start: one per registered task."""
    from app.backends.current import backends
    from app.services.definitions import sync_definitions

    registry = backends().registry
    sync_definitions(db.session, [registry.get(name) for name in ("demo.echo", "demo.sleep")], {})
    db.session.commit()


@pytest.fixture()
def tenant(unique: str) -> str:
    return f"dp-{unique}"


def jobs_of(tenant: str) -> list[JobExecution]:
    db.session.expire_all()
    return list(db.session.scalars(select(JobExecution).where(JobExecution.tenant_id == tenant)))


def test_viewers_get_no_form_and_no_navigation_entry(console: Any, tenant: str) -> None:
    viewer = console(role="viewer", tenant=tenant)
    assert viewer.get("/dispatch").status_code == 403
    assert viewer.post("/dispatch", data={"job_class": "demo.echo"}).status_code == 403
    assert 'href="/dispatch"' not in viewer.get("/jobs").get_data(as_text=True)
    assert jobs_of(tenant) == []


def test_form_lists_active_job_classes_only(console: Any, tenant: str) -> None:
    from app.models import JobDefinition

    admin = console(role="admin", tenant=tenant)
    assert admin.post("/definitions/demo.sleep/deactivate").status_code == 302  # for this tenant
    try:
        html = admin.get("/dispatch").get_data(as_text=True)
        assert '<option value="demo.echo"' in html and 'href="/dispatch"' in html
        assert '<option value="demo.sleep"' not in html
        other = console(tenant=f"{tenant}-other").get("/dispatch").get_data(as_text=True)
        assert '<option value="demo.sleep"' in other
    finally:  # other tests look the class's one global row up
        db.session.query(JobDefinition).filter_by(tenant_id=tenant).delete()
        db.session.commit()


def test_dispatch_with_options_records_the_job_audits_and_opens_its_page(
    console: Any, tenant: str, twins: Any, unique: str
) -> None:
    form = {
        "job_class": "demo.echo",
        "payload": '{"value": 42}',
        "queue": f"q-{unique}",
        "priority": "8",
        "delay": "30",
        "max_attempts": "4",
        "timeout": "60",
        "tags": "billing, urgent",
        "reason": "manual run",
    }
    answer = console(tenant=tenant).post("/dispatch", data=form)
    assert answer.status_code == 302
    [job] = jobs_of(tenant)
    assert answer.headers["Location"].endswith(f"/jobs/{job.id}")
    assert job.payload == {"value": 42} and job.queue == f"q-{unique}" and job.priority == 8
    assert job.max_attempts == 4 and {"billing", "urgent"} <= set(job.tags or []) and job.eta is not None
    assert [p.job_id for p in twins.publisher.published] == [job.id]
    [row] = db.session.scalars(select(AuditLog).where(AuditLog.action == "job.dispatch", AuditLog.target_id == job.id))
    assert row.reason == "manual run" and row.after["options"]["priority"] == 8


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("payload", "{not json", "not valid JSON"),
        ("payload", "[1, 2]", "must be a JSON object"),
        ("payload", "[" * 5000, "not valid JSON"),
        ("priority", "high", "must be a number"),
        ("priority", "12", "priority"),
        ("delay", "-5", "delay"),
        ("max_attempts", "9" * 40, "must be a number"),
        ("queue", "bad queue!", "queue"),
        ("job_class", "", "choose a job class"),
    ],
)
def test_bad_input_is_a_form_error_beside_its_field(
    console: Any, tenant: str, twins: Any, field: str, value: str, message: str
) -> None:
    form = {"job_class": "demo.echo", "payload": "{}", field: value}
    answer = console(tenant=tenant).post("/dispatch", data=form)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422, html
    assert "Nothing was dispatched" in html and message in html
    assert f'id="{field}-error"' in html or 'id="form-error"' in html
    assert jobs_of(tenant) == [] and twins.publisher.published == []


def test_unknown_job_class_is_a_form_error(console: Any, tenant: str, twins: Any) -> None:
    answer = console(tenant=tenant).post("/dispatch", data={"job_class": "no.such.task", "payload": "{}"})
    assert answer.status_code == 422 and "no.such.task" in answer.get_data(as_text=True)
    assert jobs_of(tenant) == []


def test_dispatch_needs_csrf(console: Any, tenant: str) -> None:
    answer = console(tenant=tenant).post("/dispatch", data={"job_class": "demo.echo"}, csrf=False)
    assert answer.status_code == 400 and jobs_of(tenant) == []
