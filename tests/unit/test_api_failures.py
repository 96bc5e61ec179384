"""Failure reports, fingerprint groups and the dead-letter actions of the API (F2, F4)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db, session_scope
from app.kernel.apply import EventApplier
from app.models import AuditLog, JobAttempt, JobExecution
from celeriac import events as ev
from tests.conftest import assert_problem

TRACE = 'Traceback (most recent call last):\n  File "/srv/tasks/orders.py", line 9, in handle\nRuntimeError: x\n'


def record_failure(tenant: str, queue: str, message: str, ts: float, job_class: str = "demo.fail") -> str:
    """A job that ran once and failed for good, written the way the recorder writes it."""
    job_id = str(uuid.uuid4())
    pub = ev.published(
        job_id=job_id,
        task=job_class,
        queue=queue,
        priority=5,
        payload={"message": message},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"tenant": tenant},
    )
    start = ev.started(
        job_id=job_id, attempt_key=job_id[:12], task=job_class, worker="w1", retries=0, queue=queue, payload=None
    )
    fail = ev.failed(job_id, job_id[:12], 4, 0.1, RuntimeError(message), TRACE)
    for offset, event in enumerate((pub, start, fail)):
        event["ts"] = ts + offset
    with session_scope() as session:
        EventApplier().apply(session, [pub, start, fail])
    return job_id


def test_failure_report_has_exception_traceback_attempts_and_similar_count(client: Any, auth: Any, unique: str) -> None:
    tenant = f"t-{unique}"
    first = record_failure(tenant, "default", "order 17 failed", 1_700_000_000.0)
    second = record_failure(tenant, "default", "order 18 failed", 1_700_000_100.0)
    record_failure(f"other-{unique}", "default", "order 19 failed", 1_700_000_200.0)
    response = client.get(f"/api/jobs/{second}/failure-report", headers=auth("viewer", tenant))
    assert response.status_code == 200, response.get_data(as_text=True)
    report = response.get_json()
    assert report["exception"] == {"type": "RuntimeError", "message": "RuntimeError: order 18 failed"}
    assert report["traceback"] == TRACE and report["status"] == "failed"
    assert [(a["number"], a["status"], a["worker_id"], a["runtime_ms"]) for a in report["attempts"]] == [
        (1, "failed", "w1", 4)
    ]
    # The other tenant's failure of the same kind is not counted.
    assert report["similar_failures_count"] == 1 and report["group"]["count"] == 2
    assert report["group"]["sample_job_ids"] == [second, first]
    assert len(report["fingerprint"]) == 32


def test_failure_report_of_a_job_that_did_not_fail_is_409_and_other_tenants_404(
    client: Any, auth: Any, unique: str
) -> None:
    job_id = str(uuid.uuid4())
    db.session.add(JobExecution(id=job_id, tenant_id=f"t-{unique}", job_class="demo.echo", status="completed"))
    db.session.commit()
    assert_problem(client.get(f"/api/jobs/{job_id}/failure-report", headers=auth("viewer", f"t-{unique}")), 409)
    assert_problem(client.get(f"/api/jobs/{job_id}/failure-report", headers=auth("viewer", "acme")), 404)
    assert_problem(client.get(f"/api/jobs/{job_id}/failure-report"), 401)


def test_failure_groups_newest_first_with_filters_and_keyset_pages(client: Any, auth: Any, unique: str) -> None:
    tenant = f"t-{unique}"
    headers = auth("viewer", tenant)
    for n in range(3):
        record_failure(tenant, "default", f"order {n} failed", 1_700_000_000.0 + n)
    record_failure(tenant, "default", "disk full on /dev/sda1", 1_700_000_500.0, job_class="reports.build")
    record_failure(tenant, "default", "timeout after 30s", 1_600_000_000.0)
    items = client.get("/api/monitoring/failures", headers=headers).get_json()["items"]
    assert [(g["message"], g["count"]) for g in items] == [
        ("RuntimeError: disk full on /dev/sda1", 1),
        ("RuntimeError: order <n> failed", 3),
        ("RuntimeError: timeout after <n>s", 1),
    ]
    assert items[1]["job_classes"] == ["demo.fail"] and len(items[1]["sample_job_ids"]) == 3
    only = client.get("/api/monitoring/failures?job_class=reports.build", headers=headers).get_json()["items"]
    assert [g["job_classes"] for g in only] == [["reports.build"]]
    recent = client.get("/api/monitoring/failures?since=2023-11-14T00:00:00Z", headers=headers).get_json()
    assert len(recent["items"]) == 2
    seen: list[str] = []
    cursor = ""
    while True:
        page = client.get(f"/api/monitoring/failures?limit=1&cursor={cursor}", headers=headers).get_json()
        seen += [g["fingerprint"] for g in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == [g["fingerprint"] for g in items]
    assert client.get("/api/monitoring/failures", headers=auth("viewer", "nobody")).get_json()["items"] == []


@pytest.mark.parametrize("query", ["since=yesterday", "since=2024-13-01", "limit=0", "limit=x", "cursor=%%%"])
def test_failure_groups_reject_bad_parameters_with_422(client: Any, auth: Any, query: str) -> None:
    assert_problem(client.get(f"/api/monitoring/failures?{query}", headers=auth("viewer")), 422)


def _failed_ids(tenant: str, queue: str) -> set[str]:
    db.session.expire_all()
    return set(
        db.session.scalars(
            select(JobExecution.id).where(
                JobExecution.tenant_id == tenant, JobExecution.queue == queue, JobExecution.status == "failed"
            )
        )
    )


def test_retry_all_retries_only_this_tenants_failed_jobs_of_the_queue_once(
    client: Any, auth: Any, unique: str, recording_publisher: list[Any]
) -> None:
    tenant, other, queue = f"t-{unique}", f"o-{unique}", f"dl-{unique}"
    mine = {record_failure(tenant, queue, f"boom {n}", 1_700_000_000.0 + n) for n in range(3)}
    record_failure(tenant, f"{queue}-else", "boom", 1_700_000_000.0)
    theirs = record_failure(other, queue, "boom", 1_700_000_000.0)
    response = client.post("/api/admin/queue/retry", json={"queue": queue}, headers=auth("operator", tenant))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"retried": 3, "skipped": 0}
    assert {job.retry_of for job in recording_publisher} == mine
    assert {job.queue for job in recording_publisher} == {queue}
    retries = db.session.scalars(select(JobExecution).where(JobExecution.retry_of.in_(mine | {theirs}))).all()
    assert {(r.retry_of, r.tenant_id, r.status) for r in retries} == {(i, tenant, "pending") for i in mine}
    # Already retried: a second call retries nothing.
    again = client.post("/api/admin/queue/retry", json={"queue": queue}, headers=auth("operator", tenant))
    assert again.get_json()["retried"] == 0
    entry = db.session.scalars(
        select(AuditLog).where(AuditLog.action == "queue.retry_failed", AuditLog.target_id == queue)
    ).first()
    assert entry is not None and entry.tenant_id == tenant and entry.after == {"retried": 3, "skipped": 0}


def test_clear_purges_this_tenants_failed_jobs_optionally_older_than_a_date(
    client: Any, auth: Any, unique: str
) -> None:
    tenant, other, queue = f"t-{unique}", f"o-{unique}", f"dl-{unique}"
    old = record_failure(tenant, queue, "old", 1_600_000_000.0)
    new = record_failure(tenant, queue, "new", 1_700_000_000.0)
    theirs = record_failure(other, queue, "old", 1_600_000_000.0)
    live = str(uuid.uuid4())
    db.session.add(JobExecution(id=live, tenant_id=tenant, job_class="demo.echo", queue=queue, status="pending"))
    db.session.commit()
    headers = auth("admin", tenant)
    cutoff = datetime.fromtimestamp(1_650_000_000, UTC).isoformat()
    response = client.post("/api/admin/queue/clear", json={"queue": queue, "older_than": cutoff}, headers=headers)
    assert response.status_code == 200 and response.get_json() == {"cleared": 1}
    assert _failed_ids(tenant, queue) == {new}
    assert db.session.scalars(select(JobAttempt).where(JobAttempt.execution_id == old)).all() == []
    response = client.post("/api/admin/queue/clear", json={"queue": queue}, headers=headers)
    assert response.get_json() == {"cleared": 1}
    assert _failed_ids(tenant, queue) == set() and _failed_ids(other, queue) == {theirs}
    assert db.session.get(JobExecution, live) is not None
    actions = db.session.scalars(
        select(AuditLog.after).where(AuditLog.action == "queue.clear_failed", AuditLog.target_id == queue)
    ).all()
    assert sorted(a["cleared"] for a in actions) == [1, 1]


@pytest.mark.parametrize(
    ("path", "role", "body", "status"),
    [
        ("/api/admin/queue/clear", "viewer", {"queue": "default"}, 403),
        ("/api/admin/queue/clear", "operator", {"queue": "default"}, 403),
        ("/api/admin/queue/retry", "viewer", {"queue": "default"}, 403),
        ("/api/admin/queue/clear", "admin", {"queue": "never-used-queue"}, 404),
        ("/api/admin/queue/retry", "admin", {"queue": "never-used-queue"}, 404),
        ("/api/admin/queue/clear", "admin", {"queue": "KNOWN", "older_than": "last tuesday"}, 422),
        ("/api/admin/queue/clear", "admin", {"queue": "KNOWN", "older_than": "2024-02-30"}, 422),
        ("/api/admin/queue/clear", "admin", {"queue": "KNOWN", "older_than": 5}, 422),
        ("/api/admin/queue/clear", "admin", {}, 400),
        ("/api/admin/queue/retry", "admin", {"queue": ""}, 400),
        ("/api/admin/queue/retry", "admin", {"queue": "KNOWN", "extra": 1}, 400),
        ("/api/admin/queue/retry", "admin", [1], 400),
        ("/api/admin/queue/clear", None, {"queue": "default"}, 401),
    ],
)
def test_queue_actions_reject_bad_calls(
    client: Any, auth: Any, unique: str, path: str, role: str | None, body: Any, status: int
) -> None:
    tenant, queue = f"t-{unique}", f"dl-{unique}"
    kept = record_failure(tenant, queue, "keep me", 1_600_000_000.0)
    if isinstance(body, dict) and body.get("queue") == "KNOWN":
        body = {**body, "queue": queue}
    headers = auth(role, tenant) if role else {}
    assert_problem(client.post(path, json=body, headers=headers), status)
    assert _failed_ids(tenant, queue) == {kept}


def test_a_queue_only_another_tenant_used_is_unknown(client: Any, auth: Any, unique: str) -> None:
    queue = f"dl-{unique}"
    record_failure(f"o-{unique}", queue, "theirs", 1_600_000_000.0)
    assert_problem(
        client.post("/api/admin/queue/clear", json={"queue": queue}, headers=auth("admin", f"t-{unique}")), 404
    )


def test_openapi_lists_the_failure_endpoints(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    for path in ("/api/jobs/{job_id}/failure-report", "/api/monitoring/failures", "/api/admin/queue/retry"):
        assert path in paths
    assert "422" in paths["/api/admin/queue/clear"]["post"]["responses"]
