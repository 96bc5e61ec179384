"""The console's Failed page: failure groups, dead letter per queue, retry and purge."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, FailureGroup, JobExecution
from tests.job_rows import add_job
from tests.unit.test_api_failures import record_failure

EMPTY = "No failures. When a job fails for good it appears here grouped by cause."


@pytest.fixture()
def tenant(app: Any, unique: str) -> str:
    return f"cf-{unique}"


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def group_of(tenant: str, job_id: str) -> FailureGroup:
    db.session.expire_all()
    row = db.session.get(JobExecution, job_id)
    group = db.session.get(FailureGroup, (tenant, row.fingerprint))
    assert group is not None
    return group


def audit(action: str, tenant: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.tenant_id == tenant)))


def test_empty_state_tells_the_operator_what_will_appear(console: Any, tenant: str) -> None:
    page = html(console(role="viewer", tenant=tenant).get("/failed"))
    assert EMPTY in page


def test_groups_show_cause_count_seen_classes_and_samples(console: Any, tenant: str) -> None:
    a = record_failure(tenant, "mail", "order 17 not found", 1_700_000_000.0, job_class="shop.charge")
    b = record_failure(tenant, "mail", "order 18 not found", 1_700_000_100.0, job_class="shop.refund")
    theirs = record_failure(f"{tenant}-x", "mail", "order 19 not found", 1_700_000_000.0)
    page = html(console(role="viewer", tenant=tenant).get("/failed"))
    group = group_of(tenant, a)
    assert group.count == 2 and group_of(tenant, b).fingerprint == group.fingerprint
    row = re.search(rf'<tr id="group-{group.fingerprint}">.*?</tr>', page, re.S)
    assert row, page
    for text in ("RuntimeError", "order 18 not found", "shop.charge", "shop.refund", f"/jobs/{a}", f"/jobs/{b}"):
        assert text in row.group(0), text
    assert '<span class="status status-failed">2</span>' in row.group(0)
    assert f"/jobs/{theirs}" not in page
    # Viewers see no actions; the recent list and the per-queue dead letter are there.
    assert "Retry all in group" not in page and "Purge failed" not in page
    assert 'id="failed-live"' in page and ">mail</a>" in page


def test_retry_all_in_group_retries_its_failed_jobs_once_and_audits(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    jobs = {record_failure(tenant, "mail", f"order {n} not found", 1_700_000_000.0 + n) for n in range(3)}
    other = record_failure(tenant, "mail", "disk full", 1_700_000_000.0)
    group = group_of(tenant, next(iter(jobs)))
    operator = console(tenant=tenant)
    assert "Retry all in group" in html(operator.get("/failed"))
    url = f"/failed/groups/{tenant}/{group.fingerprint}/retry"
    assert operator.post(url, data={"reason": "fixed the lookup"}).status_code == 302
    assert {job.retry_of for job in recording_publisher} == jobs and other not in {
        j.retry_of for j in recording_publisher
    }
    assert "Retried 3, skipped 0." in html(operator.get("/failed"))
    operator.post(url)
    assert len(recording_publisher) == 3  # already retried: not again
    entries = audit("failure_group.retry", tenant)
    assert [e.after["retried"] for e in entries] == [3, 0] and entries[0].reason == "fixed the lookup"


def test_group_actions_are_guarded(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    job = record_failure(tenant, "mail", "boom", 1_700_000_000.0)
    theirs = record_failure(f"{tenant}-x", "mail", "boom", 1_700_000_000.0)
    mine_url = f"/failed/groups/{tenant}/{group_of(tenant, job).fingerprint}/retry"
    their_url = f"/failed/groups/{tenant}-x/{group_of(f'{tenant}-x', theirs).fingerprint}/retry"
    assert console(role="viewer", tenant=tenant).post(mine_url).status_code == 403
    operator = console(tenant=tenant)
    assert operator.post(their_url).status_code == 404
    assert operator.post(f"/failed/groups/{tenant}/nope/retry").status_code == 404
    assert operator.post(mine_url, csrf=False).status_code == 400
    assert recording_publisher == []
    assert console(role="admin", tenant=None, superadmin=True).post(their_url).status_code == 302
    assert {j.retry_of for j in recording_publisher} == {theirs}


def test_retry_all_failed_of_a_queue(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    mail = {record_failure(tenant, "mail", f"boom {n}", 1_700_000_000.0 + n) for n in range(2)}
    record_failure(tenant, "reports", "boom", 1_700_000_000.0)
    operator = console(tenant=tenant)
    assert console(role="viewer", tenant=tenant).post("/failed/queue/retry", data={"queue": "mail"}).status_code == 403
    assert operator.post("/failed/queue/retry", data={"queue": "mail"}).status_code == 302
    assert {job.retry_of for job in recording_publisher} == mail
    assert "Queue mail: retried 2, skipped 0." in html(operator.get("/failed"))
    assert audit("queue.retry_failed", tenant)[0].after == {"retried": 2, "skipped": 0}
    assert operator.post("/failed/queue/retry", data={"queue": "never-used"}).status_code == 404


def test_purge_is_for_admins_and_can_keep_recent_failures(console: Any, tenant: str) -> None:
    old = record_failure(tenant, "mail", "old", 1_600_000_000.0)  # 2020-09-13
    new = record_failure(tenant, "mail", "new", 1_700_000_000.0)  # 2023-11-14
    live = add_job(tenant, "pending", queue="mail")
    operator, admin = console(tenant=tenant), console(role="admin", tenant=tenant)
    assert "Purge failed" not in html(operator.get("/failed"))
    assert operator.post("/failed/queue/purge", data={"queue": "mail"}).status_code == 403
    assert "Purge failed" in html(admin.get("/failed"))
    response = admin.post("/failed/queue/purge", data={"queue": "mail", "older_than": "2022-01-01T00:00"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(JobExecution, old) is None and db.session.get(JobExecution, new) is not None
    assert "Queue mail: purged 1 failed job." in html(admin.get("/failed"))
    [entry] = audit("queue.clear_failed", tenant)
    assert entry.after == {"cleared": 1} and entry.before["older_than"].startswith("2022-01-01T00:00:00")
    admin.post("/failed/queue/purge", data={"queue": "mail"})
    db.session.expire_all()
    assert db.session.get(JobExecution, new) is None and db.session.get(JobExecution, live) is not None


def test_purge_with_a_bad_date_is_a_form_error_and_deletes_nothing(console: Any, tenant: str) -> None:
    job = record_failure(tenant, "mail", "keep me", 1_600_000_000.0)
    admin = console(role="admin", tenant=tenant)
    response = admin.post("/failed/queue/purge", data={"queue": "mail", "older_than": "last tuesday"})
    assert response.status_code == 422
    assert "not a date and time" in html(response) and 'role="alert"' in html(response)
    db.session.expire_all()
    assert db.session.get(JobExecution, job) is not None and audit("queue.clear_failed", tenant) == []
    assert admin.post("/failed/queue/purge", data={"queue": "mail"}, csrf=False).status_code == 400


def test_recent_failed_list_polls_alone(console: Any, tenant: str) -> None:
    job = record_failure(tenant, "mail", "boom", 1_700_000_000.0)
    fragment = html(console(tenant=tenant).get("/failed", headers={"HX-Request": "true"}))
    assert "<html" not in fragment and f"/jobs/{job}" in fragment and "RuntimeError" in fragment


def test_dead_letter_counts_each_queue_of_the_tenant_up_to_the_cap(
    console: Any, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.failures import dead_letter

    monkeypatch.setattr(dead_letter, "FAILED_COUNT_CAP", 3)
    for _ in range(5):
        add_job(tenant, queue="mail")
    add_job(tenant, queue="reports")
    add_job(tenant, "completed", queue="reports")
    add_job(tenant, "completed", queue="quiet")
    add_job(f"{tenant}-other", queue="others-only")
    assert dead_letter.failed_by_queue(db.session, tenant, cap=3) == [("mail", 4), ("reports", 1)]
    page = html(console(role="viewer", tenant=tenant).get("/failed"))
    rows = re.findall(r'<td><a href="[^"]*">([^<]+)</a></td>\s*<td class="num">([^<]+)</td>', page)
    assert rows == [("mail", "3+"), ("reports", "1")]
