"""Console schedules: list, cron builder with live preview, create / edit, actions, access matrix."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db
from app.models import AuditLog, JobExecution, JobSchedule

FORM = {
    "minute": "30",
    "hour": "2",
    "day_of_month": "*",
    "month": "*",
    "day_of_week": "*",
    "cron": "30 2 * * *",
    "timezone": "Europe/Berlin",
    "job_class": "demo.echo",
    "payload": '{"value": "nightly"}',
    "name": "Nightly echo",
    "active": "y",
    "missed_fire_policy": "skip",
}


@pytest.fixture(autouse=True)
def synced(app: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()


def make_schedule(tenant: str, **changes: Any) -> JobSchedule:
    from app.schedules.service import default_service

    row = default_service(db.session).schedule_job(
        "demo.echo", "0 3 * * *", "UTC", {"value": 1}, tenant_id=tenant, **changes
    )
    return row


def audits(action: str, target: str) -> int:
    db.session.expire_all()
    query = select(func.count()).select_from(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)
    return int(db.session.scalar(query) or 0)


def count_schedules(tenant: str) -> int:
    return int(
        db.session.scalar(select(func.count()).select_from(JobSchedule).where(JobSchedule.tenant_id == tenant)) or 0
    )


def test_anonymous_is_sent_to_login(client: Any, unique: str) -> None:
    row = make_schedule(unique)
    for path in ("/schedules", "/schedules/new", f"/schedules/{row.id}", "/schedules/preview?cron=*+*+*+*+*"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_list_shows_own_schedules_with_description_and_state(console: Any, unique: str) -> None:
    mine = make_schedule(unique, name="Mine")
    other = make_schedule(f"other-{unique}", name="Theirs")
    page = console(role="viewer", tenant=unique).get("/schedules").get_data(as_text=True)
    assert "Mine" in page and "At 03:00" in page and "0 3 * * *" in page and "demo.echo" in page
    assert "Theirs" not in page and other.id not in page and mine.id in page
    assert "New schedule" not in page  # viewers do not create


def test_builder_has_labelled_fields_and_a_live_preview_region(console: Any, unique: str) -> None:
    page = console(role="admin", tenant=unique).get("/schedules/new").get_data(as_text=True)
    for label in ("Minute", "Hour", "Day of month", "Month", "Day of week", "Cron expression", "Timezone"):
        assert f">{label}</label>" in page
    assert 'id="cron-preview"' in page and 'aria-live="polite"' in page
    assert 'hx-get="/schedules/preview"' in page and "Europe/Berlin" in page
    assert "js/cron_builder.js" in page


def test_preview_describes_the_fields_and_lists_five_runs_in_the_zone(console: Any, unique: str) -> None:
    session = console(role="viewer", tenant=unique)
    fields = "minute=30&hour=2&day_of_month=*&month=*&day_of_week=*&timezone=Europe/Berlin"
    page = session.get(f"/schedules/preview?{fields}").get_data(as_text=True)
    assert "At 02:30" in page and page.count("<li>") == 5 and "02:30 CE" in page
    raw = session.get("/schedules/preview?cron=0+9+*+*+1&minute=30&timezone=UTC").get_data(as_text=True)
    assert "At 09:00, only on Monday" in raw
    bad = session.get("/schedules/preview?cron=61+*+*+*+*&timezone=UTC").get_data(as_text=True)
    assert "Not a valid schedule" in bad and "<li>" not in bad
    zone = session.get("/schedules/preview?cron=0+2+*+*+*&timezone=Mars/Olympus").get_data(as_text=True)
    assert "IANA" in zone


def test_admin_creates_a_schedule_and_it_is_audited(console: Any, unique: str) -> None:
    response = console(role="admin", tenant=unique).post("/schedules/new", data=FORM)
    assert response.status_code == 302, response.get_data(as_text=True)
    row = db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique))
    assert row is not None and response.headers["Location"].endswith(f"/schedules/{row.id}")
    assert (row.cron_expression, row.timezone, row.payload, row.name) == (
        "30 2 * * *", "Europe/Berlin", {"value": "nightly"}, "Nightly echo"
    )  # fmt: skip
    assert row.is_active and row.next_run_at is not None
    assert audits("schedule.create", row.id) == 1


def test_five_fields_are_used_when_the_expression_is_empty(console: Any, unique: str) -> None:
    data = {**FORM, "cron": "", "minute": "*/15", "hour": "8-17"}
    assert console(role="admin", tenant=unique).post("/schedules/new", data=data).status_code == 302
    row = db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique))
    assert row is not None and row.cron_expression == "*/15 8-17 * * *"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cron": "61 2 * * *"}, "out of range"),
        ({"cron": "30 2 * *"}, "4 fields"),
        ({"timezone": "Europe/Atlantis"}, "Not a valid choice"),
        ({"payload": "{not json"}, "payload is not valid JSON"),
        ({"payload": "[1, 2]"}, "payload must be a JSON object"),
        ({"job_class": "no.such.job"}, "Not a valid choice"),
    ],
)
def test_invalid_input_shows_form_errors_and_saves_nothing(
    console: Any, unique: str, changes: dict[str, str], message: str
) -> None:
    response = console(role="admin", tenant=unique).post("/schedules/new", data={**FORM, **changes})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in page and "Nothing was saved" in page
    assert count_schedules(unique) == 0


def test_roles_csrf_and_other_tenants(console: Any, unique: str) -> None:
    row = make_schedule(unique)
    assert console(role="operator", tenant=unique).get("/schedules/new").status_code == 403
    assert console(role="viewer", tenant=unique).post("/schedules/new", data=FORM).status_code == 403
    admin = console(role="admin", tenant=unique)
    assert admin.post("/schedules/new", data=FORM, csrf=False).status_code == 400
    assert admin.post(f"/schedules/{row.id}/pause", csrf=False).status_code == 400
    operator = console(role="operator", tenant=unique)
    for action in ("pause", "resume", "delete"):
        assert operator.post(f"/schedules/{row.id}/{action}").status_code == 403
    assert operator.get(f"/schedules/{row.id}/edit").status_code == 403
    assert console(role="viewer", tenant=unique).post(f"/schedules/{row.id}/run").status_code == 403
    stranger = console(role="admin", tenant=f"other-{unique}")
    assert stranger.get(f"/schedules/{row.id}").status_code == 404
    assert stranger.get(f"/schedules/{row.id}/edit").status_code == 404
    for action in ("pause", "resume", "run", "delete"):
        assert stranger.post(f"/schedules/{row.id}/{action}").status_code == 404
    db.session.expire_all()
    assert db.session.get(JobSchedule, row.id) is not None


def test_pause_resume_and_delete_are_audited(console: Any, unique: str) -> None:
    row = make_schedule(unique)
    admin = console(role="admin", tenant=unique)
    assert admin.post(f"/schedules/{row.id}/pause", data={"reason": "maintenance"}).status_code == 302
    db.session.expire_all()
    assert db.session.get(JobSchedule, row.id).is_active is False
    detail = admin.get(f"/schedules/{row.id}").get_data(as_text=True)
    assert "paused" in detail and "Resume" in detail
    assert admin.post(f"/schedules/{row.id}/resume").status_code == 302
    db.session.expire_all()
    assert db.session.get(JobSchedule, row.id).is_active is True
    assert audits("schedule.pause", row.id) == 1 and audits("schedule.resume", row.id) == 1
    reason = db.session.scalar(
        select(AuditLog.reason).where(AuditLog.action == "schedule.pause", AuditLog.target_id == row.id)
    )
    assert reason == "maintenance"
    schedule_id = row.id  # the row is gone after the delete: its id is read before
    assert admin.post(f"/schedules/{schedule_id}/delete").headers["Location"].endswith("/schedules")
    db.session.expire_all()
    assert db.session.get(JobSchedule, schedule_id) is None and audits("schedule.delete", schedule_id) == 1


def test_operator_runs_now_and_the_run_shows_in_history(
    console: Any, unique: str, recording_publisher: list[Any]
) -> None:
    row = make_schedule(unique)
    operator = console(role="operator", tenant=unique)
    response = operator.post(f"/schedules/{row.id}/run")
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[-1]
    job = db.session.get(JobExecution, job_id)
    assert job is not None and job.schedule_id == row.id and job.tenant_id == unique
    assert audits("schedule.run", row.id) == 1
    history = operator.get(f"/schedules/{row.id}").get_data(as_text=True)
    assert job_id[:8] in history and "Run now" in history and "Pause" not in history


def test_edit_prefills_the_builder_and_saves_changes(console: Any, unique: str) -> None:
    row = make_schedule(unique)
    admin = console(role="admin", tenant=unique)
    page = admin.get(f"/schedules/{row.id}/edit").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="cron"[^>]*value="0 3 \* \* \*"', page)
    assert re.search(r'<input[^>]*id="minute"[^>]*value="0"', page)
    assert re.search(r'<input[^>]*id="hour"[^>]*value="3"', page)
    assert "At 03:00" in page
    response = admin.post(f"/schedules/{row.id}/edit", data={**FORM, "cron": "0 4 * * 1", "timezone": "UTC"})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(JobSchedule, row.id)
    assert saved is not None and saved.cron_expression == "0 4 * * 1" and saved.name == "Nightly echo"
    assert audits("schedule.update", row.id) == 1
    bad = admin.post(f"/schedules/{row.id}/edit", data={**FORM, "cron": "nonsense"})
    assert bad.status_code == 422
    db.session.expire_all()
    assert db.session.get(JobSchedule, row.id).cron_expression == "0 4 * * 1"


def test_superadmin_creates_a_schedule_for_the_tenant_named_in_the_form(console: Any, unique: str) -> None:
    superadmin = console(role="admin", tenant=None, superadmin=True)
    assert 'id="tenant"' in superadmin.get("/schedules/new").get_data(as_text=True)
    assert superadmin.post("/schedules/new", data={**FORM, "tenant": unique}).status_code == 302
    assert count_schedules(unique) == 1
    listing = superadmin.get("/schedules").get_data(as_text=True)
    assert f"· {unique}" in listing


def test_run_now_of_an_inactive_class_says_why_and_dispatches_nothing(console: Any, unique: str) -> None:
    from app.services import definitions

    row = make_schedule(unique)
    definitions.update_definition(db.session, "demo.echo", unique, {"is_active": False}, definitions.Limits(900))
    operator = console(role="operator", tenant=unique)
    response = operator.post(f"/schedules/{row.id}/run")
    assert response.headers["Location"].endswith(f"/schedules/{row.id}")
    assert "Not run: job class &#39;demo.echo&#39; is inactive" in operator.get(response.headers["Location"]).get_data(
        as_text=True
    )
    runs = db.session.scalar(select(func.count()).select_from(JobExecution).where(JobExecution.schedule_id == row.id))
    assert runs == 0
    outcome = db.session.scalar(
        select(AuditLog.outcome).where(AuditLog.action == "schedule.run", AuditLog.target_id == row.id)
    )
    assert outcome == "refused"
