"""Definitions API (J3): read, change, activate / deactivate, per-tenant overrides (U6)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobDefinition, JobExecution
from tests.conftest import assert_problem


@pytest.fixture(autouse=True)
def synced(app: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()


def dispatch(client: Any, auth: Any, tenant: str, job_class: str = "demo.echo") -> Any:
    return client.post(
        "/api/jobs/dispatch", json={"job_class": job_class, "payload": {"value": 1}}, headers=auth("operator", tenant)
    )


def patch(client: Any, auth: Any, tenant: str, body: Any, job_class: str = "demo.echo") -> Any:
    return client.patch(f"/api/definitions/{job_class}", json=body, headers=auth("admin", tenant))


def global_row(job_class: str = "demo.echo") -> JobDefinition:
    db.session.expire_all()
    row = db.session.scalar(
        select(JobDefinition).where(JobDefinition.job_class == job_class, JobDefinition.tenant_id.is_(None))
    )
    assert row is not None
    return row


def test_viewer_lists_every_class_with_its_defaults(client: Any, auth: Any, unique: str) -> None:
    response = client.get("/api/definitions", headers=auth("viewer", unique))
    assert response.status_code == 200
    items = {item["job_class"]: item for item in response.get_json()["items"]}
    assert {"demo.echo", "demo.sleep", "demo.fail", "demo.flaky", "demo.add"} <= set(items)
    echo = items["demo.echo"]
    assert echo["is_active"] is True and echo["overridden"] is False
    assert 0 <= echo["priority"] <= 9 and echo["max_attempts"] >= 1 and echo["default_queue"]
    one = client.get("/api/definitions/demo.echo", headers=auth("viewer", unique)).get_json()
    assert one == echo


def test_tenant_deactivation_refuses_only_that_tenants_dispatches(
    client: Any, auth: Any, unique: str, recording_publisher: list[Any]
) -> None:
    tenant_a, tenant_b = f"a-{unique}", f"b-{unique}"
    response = patch(client, auth, tenant_a, {"is_active": False})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["is_active"] is False and response.get_json()["overridden"] is True

    assert "inactive" in assert_problem(dispatch(client, auth, tenant_a), 422)["detail"]
    assert dispatch(client, auth, tenant_b).status_code == 201
    assert global_row().is_active is True

    seen_a = client.get("/api/definitions/demo.echo", headers=auth("viewer", tenant_a)).get_json()
    seen_b = client.get("/api/definitions/demo.echo", headers=auth("viewer", tenant_b)).get_json()
    assert (seen_a["is_active"], seen_a["overridden"]) == (False, True)
    assert (seen_b["is_active"], seen_b["overridden"]) == (True, False)

    reset = client.delete("/api/definitions/demo.echo", headers=auth("admin", tenant_a))
    assert reset.status_code == 200 and reset.get_json()["overridden"] is False
    assert dispatch(client, auth, tenant_a).status_code == 201


def test_tenant_defaults_apply_to_its_dispatches(
    client: Any, auth: Any, unique: str, recording_publisher: list[Any]
) -> None:
    body = {"default_queue": f"q-{unique}", "priority": 8, "max_attempts": 4, "timeout": 42, "tags": ["billing"]}
    assert patch(client, auth, unique, body).status_code == 200
    job_id = dispatch(client, auth, unique).get_json()["id"]
    row = db.session.get(JobExecution, job_id)
    assert row is not None
    assert (row.queue, row.priority, row.max_attempts) == (f"q-{unique}", 8, 4)
    assert "billing" in (row.tags or [])
    assert recording_publisher[-1].timeout_s == 42
    other = dispatch(client, auth, f"other-{unique}").get_json()
    assert other["queue"] != f"q-{unique}"


def test_change_is_audited_with_before_and_after(client: Any, auth: Any, unique: str) -> None:
    assert patch(client, auth, unique, {"priority": 2, "description": "Echoes"}).status_code == 200
    audit = db.session.scalar(
        select(AuditLog).where(AuditLog.action == "definition.update", AuditLog.tenant_id == unique)
    )
    assert audit is not None and audit.target_id == "demo.echo"
    assert audit.after["priority"] == 2 and audit.after["description"] == "Echoes"
    assert audit.before["overridden"] is False


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"priority": 10}, "priority must be an integer from 0 to 9"),
        ({"priority": "high"}, "priority must be"),
        ({"max_attempts": 0}, "max_attempts must be from 1"),
        ({"timeout": 100_000}, "timeout must be from 1 to"),
        ({"retry_after": -1}, "retry_after must be from 0"),
        ({"is_active": "no"}, "is_active must be true or false"),
        ({"tags": [1]}, "tags must be a list"),
        ({"default_queue": "bad queue!"}, "default_queue must be"),
        ({"colour": "red"}, "unknown field(s) colour"),
        ({}, "name at least one field"),
    ],
)
def test_bad_fields_are_422_and_change_nothing(client: Any, auth: Any, unique: str, body: Any, detail: str) -> None:
    response = patch(client, auth, unique, body)
    assert detail in assert_problem(response, 422)["detail"]
    seen = client.get("/api/definitions/demo.echo", headers=auth("viewer", unique)).get_json()
    assert seen["overridden"] is False


def test_unknown_class_is_404(client: Any, auth: Any) -> None:
    assert_problem(client.get("/api/definitions/no.such.job", headers=auth("viewer")), 404)
    assert_problem(client.patch("/api/definitions/no.such.job", json={"priority": 1}, headers=auth("admin")), 404)


def test_roles_and_authentication(client: Any, auth: Any) -> None:
    assert_problem(client.get("/api/definitions"), 401)
    for role in ("viewer", "operator"):
        assert_problem(client.patch("/api/definitions/demo.echo", json={"priority": 1}, headers=auth(role)), 403)
        assert_problem(client.delete("/api/definitions/demo.echo", headers=auth(role)), 403)
    assert_problem(client.patch("/api/definitions/demo.echo", data="{", headers=auth("admin")), 400)


def test_openapi_lists_the_definition_paths(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    assert "get" in paths["/api/definitions"]
    assert {"get", "patch", "delete"} <= set(paths["/api/definitions/{job_class}"])


def test_two_first_edits_at_once_both_land_on_one_override(app: Any, unique: str) -> None:
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app.services import definitions

    session = db.session()
    raced: list[str] = []

    def competing_edit(*_: Any) -> None:
        if raced:
            return
        raced.append("done")
        with Session(db.engine) as other:  # another request creates the override first
            definitions.update_definition(other, "demo.echo", unique, {"priority": 1}, definitions.Limits(900))

    event.listen(session, "before_flush", competing_edit)
    try:
        row = definitions.update_definition(session, "demo.echo", unique, {"max_attempts": 7}, definitions.Limits(900))
    finally:
        event.remove(session, "before_flush", competing_edit)
    overrides = db.session.scalars(
        select(JobDefinition).where(JobDefinition.job_class == "demo.echo", JobDefinition.tenant_id == unique)
    ).all()
    assert raced and len(overrides) == 1 and row.id == overrides[0].id
    assert (row.priority, row.max_attempts) == (1, 7)
