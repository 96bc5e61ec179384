"""Console job definitions: effective defaults per tenant, edit form errors, (de)activate, reset."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db
from app.models import AuditLog, JobDefinition

FORM = {
    "default_queue": "default",
    "priority": "5",
    "max_attempts": "3",
    "timeout": "60",
    "retry_after": "30",
    "tags": "reports, nightly",
    "description": "Echoes a value",
    "is_active": "y",
}


@pytest.fixture(autouse=True)
def synced(app: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()


def audits(action: str, tenant: str | None) -> int:
    db.session.expire_all()
    query = select(func.count()).select_from(AuditLog).where(AuditLog.action == action, AuditLog.tenant_id == tenant)
    return int(db.session.scalar(query) or 0)


def override(tenant: str, job_class: str = "demo.echo") -> JobDefinition | None:
    db.session.expire_all()
    return db.session.scalar(
        select(JobDefinition).where(JobDefinition.job_class == job_class, JobDefinition.tenant_id == tenant)
    )


def test_viewer_sees_every_class_with_its_defaults_and_no_edit_controls(console: Any, unique: str) -> None:
    page = console(role="viewer", tenant=unique).get("/definitions").get_data(as_text=True)
    for job_class in ("demo.echo", "demo.sleep", "demo.fail", "demo.add"):
        assert f"<strong>{job_class}</strong>" in page
    assert "your tenant only" in page and ">active</span>" in page
    assert "Deactivate" not in page and "/edit" not in page


def test_deactivate_is_per_tenant_confirmed_and_audited(
    console: Any, unique: str, client: Any, auth: Any, recording_publisher: list[Any]
) -> None:
    admin = console(role="admin", tenant=unique)
    page = admin.get("/definitions").get_data(as_text=True)
    assert 'data-confirm="Deactivate demo.echo?' in page
    assert admin.post("/definitions/demo.echo/deactivate", data={"reason": "broken upstream"}).status_code == 302
    row = override(unique)
    assert row is not None and row.is_active is False
    assert audits("definition.deactivate", unique) == 1
    mine = admin.get("/definitions").get_data(as_text=True)
    assert "your tenant&#39;s" in mine and ">inactive</span>" in mine and "Reset to defaults" in mine
    other = console(role="viewer", tenant=f"other-{unique}").get("/definitions").get_data(as_text=True)
    assert ">inactive</span>" not in other
    refused = client.post("/api/jobs/dispatch", json={"job_class": "demo.echo"}, headers=auth("operator", unique))
    assert refused.status_code == 422
    assert admin.post("/definitions/demo.echo/activate").status_code == 302
    assert override(unique).is_active is True  # type: ignore[union-attr]
    assert admin.post("/definitions/demo.echo/reset").status_code == 302
    assert override(unique) is None and audits("definition.reset", unique) == 1


def test_edit_form_saves_valid_values(console: Any, unique: str) -> None:
    admin = console(role="admin", tenant=unique)
    form_page = admin.get("/definitions/demo.echo/edit").get_data(as_text=True)
    assert 'id="priority"' in form_page and "Saving gives your tenant its own values" in form_page
    response = admin.post("/definitions/demo.echo/edit", data=FORM)
    assert response.status_code == 302
    row = override(unique)
    assert row is not None
    assert (row.priority, row.max_attempts, row.timeout, row.retry_after) == (5, 3, 60, 30)
    assert row.tags == ["reports", "nightly"] and row.description == "Echoes a value"
    assert audits("definition.update", unique) == 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("priority", "12", "priority must be an integer from 0 to 9"),
        ("priority", "high", "priority must be an integer from 0 to 9"),
        ("max_attempts", "0", "max_attempts must be from 1"),
        ("timeout", "99999", "timeout must be from 1 to"),
        ("retry_after", "-5", "retry_after must be from 0"),
        ("default_queue", "no spaces", "default_queue must be"),
    ],
)
def test_invalid_values_are_form_errors_and_save_nothing(
    console: Any, unique: str, field: str, value: str, message: str
) -> None:
    response = console(role="admin", tenant=unique).post("/definitions/demo.echo/edit", data={**FORM, field: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and f'id="{field}-error"' in page and "Nothing was saved" in page
    assert override(unique) is None


def test_superadmin_edits_the_global_defaults(console: Any) -> None:
    admin = console(role="admin", tenant=None, superadmin=True)
    assert "global defaults" in admin.get("/definitions").get_data(as_text=True)
    try:
        assert admin.post("/definitions/demo.add/deactivate").status_code == 302
        db.session.expire_all()
        row = db.session.scalar(
            select(JobDefinition).where(JobDefinition.job_class == "demo.add", JobDefinition.tenant_id.is_(None))
        )
        assert row is not None and row.is_active is False
        reset = admin.post("/definitions/demo.add/reset")
        assert "Not reset" in admin.get(reset.headers["Location"]).get_data(as_text=True)
    finally:
        admin.post("/definitions/demo.add/activate")


def test_access_matrix(client: Any, console: Any, unique: str) -> None:
    for path in ("/definitions", "/definitions/demo.echo/edit"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    operator = console(role="operator", tenant=unique)
    assert operator.get("/definitions/demo.echo/edit").status_code == 403
    for action in ("edit", "activate", "deactivate", "reset"):
        assert operator.post(f"/definitions/demo.echo/{action}", data=FORM).status_code == 403
    admin = console(role="admin", tenant=unique)
    assert admin.post("/definitions/demo.echo/deactivate", csrf=False).status_code == 400
    assert admin.get("/definitions/no.such.job/edit").status_code == 404
    assert admin.post("/definitions/no.such.job/deactivate").status_code == 404
    assert override(unique) is None
