"""Encrypted jobs' errors (J9) in the console and the API: "[encrypted]" everywhere, and an
admin's audited reveal on the job page."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app.crypto import REDACTED, seal_exception, seal_payload
from app.db import db
from app.models import AuditLog, JobAttempt, JobExecution
from ops_ui.presenters import failure_report_to_dict
from tests.crypto_keys import use_keys
from tests.job_rows import T0, add_job

KEY = Fernet.generate_key().decode()


@pytest.fixture()
def keys() -> Iterator[None]:
    with use_keys(KEY):
        yield


@pytest.fixture()
def tenant(unique: str) -> str:
    return f"se-{unique}"


@pytest.fixture()
def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def sealed_failure(tenant: str, canary: str, encrypted: bool = True) -> tuple[str, str]:
    """A failed encrypted job as the recorder leaves it: two attempts, each error a token.

    Returns the job id and the final error's token.
    """
    try:
        raise ValueError(f"card {canary} declined")
    except ValueError as exc:
        final = str(seal_exception(exc))
    first = str(seal_exception(ValueError(f"first try for {canary}")))
    job_id = add_job(
        tenant,
        "failed",
        payload=seal_payload({"card": canary}),
        encrypted=encrypted,
        attempts=2,
        max_attempts=2,
        exception_type="ValueError",
        error_message=f"ValueError: {final}",
        exception_trace=f"Traceback (most recent call last):\n  ...\napp.crypto.SealedError: {final}\n",
        failed_at=T0 + timedelta(seconds=5),
    )
    for number, error in ((1, f"Retry: Retry in 0s: SealedError('{first}')"), (2, f"ValueError: {final}")):
        db.session.add(
            JobAttempt(
                execution_id=job_id,
                attempt_key=uuid.uuid4().hex,
                number=number,
                status="retrying" if number == 1 else "failed",
                started_at=T0 + timedelta(seconds=number),
                finished_at=T0 + timedelta(seconds=number + 1),
                error_message=error,
            )
        )
    db.session.commit()
    return job_id, final


def audits(tenant: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(
        db.session.scalars(select(AuditLog).where(AuditLog.action == "job.reveal_error", AuditLog.tenant_id == tenant))
    )


# -- shown as "[encrypted]" ------------------------------------------------------------


def test_job_page_shows_encrypted_errors_and_the_readable_type(
    keys: None, console: Any, tenant: str, canary: str
) -> None:
    job_id, token = sealed_failure(tenant, canary)
    for role in ("viewer", "operator", "admin"):
        page = html(console(role=role, tenant=tenant).get(f"/jobs/{job_id}"))
        assert "<code>ValueError</code>" in page and REDACTED in page
        assert token not in page and "gAAAAA" not in page and canary not in page
        assert ("Reveal error" in page) is (role == "admin")


def test_api_answers_show_encrypted_errors(keys: None, client: Any, auth: Any, tenant: str, canary: str) -> None:
    job_id, token = sealed_failure(tenant, canary)
    headers = auth("viewer", tenant)
    one = client.get(f"/api/jobs/{job_id}", headers=headers)
    job = one.get_json()
    assert job["error_message"] == REDACTED and job["exception_trace"] == REDACTED
    assert job["exception_type"] == "ValueError"
    listed = client.get("/api/jobs?status=failed", headers=headers)
    assert listed.get_json()["items"][0]["error_message"] == REDACTED
    for answer in (one, listed):
        assert token not in html(answer) and canary not in html(answer)


def test_failure_report_of_an_encrypted_job_hides_message_traceback_and_attempt_errors(
    keys: None, app: Any, tenant: str, canary: str
) -> None:
    from app.failures.groups import failure_report

    job_id, token = sealed_failure(tenant, canary)
    row = db.session.get(JobExecution, job_id)
    shown = failure_report_to_dict(failure_report(db.session, job_id, tenant), row)
    assert shown["exception"] == {"type": "ValueError", "message": REDACTED}
    assert shown["traceback"] == REDACTED and [a["error"] for a in shown["attempts"]] == [REDACTED, REDACTED]
    assert token not in repr(shown) and "gAAAAA" not in repr(shown)

    clear = add_job(tenant, "failed", error_message="RuntimeError: boom", exception_type="RuntimeError")
    report = failure_report(db.session, clear, tenant)
    assert failure_report_to_dict(report, db.session.get(JobExecution, clear)) == report


# -- reveal ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_may_reveal(keys: None, console: Any, tenant: str, canary: str, role: str) -> None:
    job_id, _ = sealed_failure(tenant, canary)
    answer = console(role=role, tenant=tenant).post(f"/jobs/{job_id}/reveal-error", data={"reason": "debugging"})
    assert answer.status_code == 403 and canary not in html(answer)
    assert audits(tenant) == []


def test_reveal_needs_a_session_and_a_csrf_token(
    keys: None, client: Any, console: Any, tenant: str, canary: str
) -> None:
    job_id, _ = sealed_failure(tenant, canary)
    assert client.post(f"/jobs/{job_id}/reveal-error", data={"reason": "x"}).status_code == 400
    admin = console(role="admin", tenant=tenant)
    answer = admin.post(f"/jobs/{job_id}/reveal-error", data={"reason": "x"}, csrf=False)
    assert answer.status_code == 400 and canary not in html(answer)
    assert audits(tenant) == []


def test_admin_reveals_an_encrypted_error_once_audited_and_never_cached(
    keys: None, console: Any, tenant: str, canary: str, caplog: pytest.LogCaptureFixture
) -> None:
    job_id, token = sealed_failure(tenant, canary)
    admin = console(role="admin", tenant=tenant)
    caplog.set_level(logging.DEBUG)

    answer = admin.post(f"/jobs/{job_id}/reveal-error", data={"reason": "customer ticket 4711"})

    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    page = html(answer)
    assert f"card {canary} declined" in page  # the final error's message
    assert "raise ValueError" in page  # its traceback
    assert f"first try for {canary}" in page  # the first attempt's error
    assert token not in page
    [entry] = audits(tenant)
    assert entry.actor == f"user:{admin.user_id}" and entry.target_id == job_id
    assert entry.reason == "customer ticket 4711" and entry.created_at is not None
    assert entry.outcome == "ok" and canary not in repr((entry.before, entry.after))
    assert canary not in caplog.text  # never logged
    # The job's page still shows "[encrypted]".
    assert canary not in html(admin.get(f"/jobs/{job_id}"))


def test_reveal_without_a_reason_is_a_form_error(keys: None, console: Any, tenant: str, canary: str) -> None:
    job_id, _ = sealed_failure(tenant, canary)
    answer = console(role="admin", tenant=tenant).post(f"/jobs/{job_id}/reveal-error", data={"reason": "  "})
    assert answer.status_code == 422
    assert "Say why you need to see this error." in html(answer) and canary not in html(answer)
    assert audits(tenant) == []


def test_reveal_of_another_tenants_job_is_404(keys: None, console: Any, tenant: str, canary: str) -> None:
    theirs, _ = sealed_failure(f"{tenant}-other", canary)
    answer = console(role="admin", tenant=tenant).post(f"/jobs/{theirs}/reveal-error", data={"reason": "x"})
    assert answer.status_code == 404 and canary not in html(answer)


def test_reveal_of_a_job_that_is_not_encrypted_goes_back_to_its_page(
    keys: None, console: Any, tenant: str, canary: str
) -> None:
    job_id = add_job(tenant, "failed", error_message="RuntimeError: boom", exception_type="RuntimeError")
    answer = console(role="admin", tenant=tenant).post(f"/jobs/{job_id}/reveal-error", data={"reason": "x"})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/jobs/{job_id}")
    assert audits(tenant) == []


def test_an_error_sealed_with_a_key_rotated_out_says_so(console: Any, tenant: str, canary: str) -> None:
    with use_keys(Fernet.generate_key().decode()):
        job_id, _ = sealed_failure(tenant, canary)
    with use_keys(KEY):
        answer = console(role="admin", tenant=tenant).post(f"/jobs/{job_id}/reveal-error", data={"reason": "audit"})
    assert answer.status_code == 200 and "Cannot be decrypted" in html(answer)
    assert audits(tenant)[0].outcome == "partial"


def test_an_error_celeriac_recorded_itself_is_shown_as_stored(keys: None, console: Any, tenant: str) -> None:
    job_id = add_job(
        tenant,
        "failed",
        payload=seal_payload({"card": "x"}),
        encrypted=True,
        exception_type="WorkerLostError",
        error_message="WorkerLostError: the worker process died",
    )
    admin = console(role="admin", tenant=tenant)
    assert "the worker process died" not in html(admin.get(f"/jobs/{job_id}"))
    page = html(admin.post(f"/jobs/{job_id}/reveal-error", data={"reason": "why did it die"}))
    assert "WorkerLostError: the worker process died" in page and "Recorded by Celeriac itself" in page
