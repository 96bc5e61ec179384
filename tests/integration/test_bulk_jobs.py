"""Bulk work as a tracked job, with a real worker and recorder: count, audit, progress, cancel."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db, session_scope
from app.models import AuditLog, JobExecution
from tests.conftest import wait_for
from tests.job_rows import T0

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def failed_jobs(tenant: str, n: int, queue: str) -> None:
    db.session.add_all(
        JobExecution(
            id=str(uuid.uuid4()),
            tenant_id=tenant,
            job_class="demo.echo",
            queue=queue,
            status="failed",
            payload={"value": k},
            max_attempts=1,
            created_at=T0 + timedelta(seconds=k),
        )
        for k in range(n)
    )
    db.session.commit()


def audit_of(job_id: str) -> AuditLog | None:
    with session_scope() as session:
        return session.scalars(
            select(AuditLog).where(
                AuditLog.target_id == job_id,
                AuditLog.action.like("job.bulk_%"),
                AuditLog.action != "job.bulk_requested",
            )
        ).first()


def retries_of(tenant: str, queue: str) -> int:
    with session_scope() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    JobExecution.tenant_id == tenant, JobExecution.queue == queue, JobExecution.retry_of.is_not(None)
                )
            )
            or 0
        )


def test_bulk_retry_of_300_failed_jobs_completes_with_count_progress_and_audit(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    tenant, queue = f"t{unique}", f"held-{unique}"  # a queue no worker consumes: retries stay pending
    failed_jobs(tenant, 300, queue)
    headers = auth("operator", tenant)
    body = {"action": "retry", "filter": {"status": "failed", "queue": queue}, "reason": "provider back"}
    preview = client.post("/api/jobs/bulk?preview=1", json=body, headers=headers).get_json()
    assert preview["count"] == 300 and len(preview["sample"]) == 5
    started = client.post("/api/jobs/bulk", json=body, headers=headers)
    assert started.status_code == 202, started.get_json()
    job_id = started.get_json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        return job if job["status"] in ("completed", "failed") else None

    job = wait_for(finished, timeout=90, what="bulk job")
    assert job["status"] == "completed", job["error_message"]
    assert job["result"]["retried"] == 300 and job["result"]["count"] == 300
    assert job["progress"] == 100 and job["progress_message"] == "retried 300, skipped 0 of 300"
    assert retries_of(tenant, queue) == 300
    entry = wait_for(lambda: audit_of(job_id), timeout=10, what="audit entry")
    assert entry.outcome == "ok" and entry.after["count"] == 300 and entry.reason == "provider back"
    assert entry.before["filter"] == {"status": "failed", "queue": queue} and entry.actor.startswith("token:")
    # Running it again finds nothing left to retry.
    assert client.post("/api/jobs/bulk?preview=1", json=body, headers=headers).get_json()["count"] == 0


def test_cancelling_a_running_bulk_job_stops_it_between_chunks_and_keeps_what_was_done(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    tenant, queue = f"t{unique}", f"held-{unique}"
    failed_jobs(tenant, 3000, queue)
    headers = auth("operator", tenant)
    started = client.post("/api/jobs/bulk", json={"action": "retry", "filter": {"queue": queue}}, headers=headers)
    job_id = started.get_json()["id"]
    # Given the bulk job is part way through, when its cancel is asked for,
    wait_for(lambda: retries_of(tenant, queue) > 0, timeout=60, what="the bulk job under way")
    cancel = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
    assert cancel.status_code == 200, cancel.get_json()
    # then it stops at the end of a chunk, and its audit entry says how many it did.
    entry = wait_for(lambda: audit_of(job_id), timeout=60, what="the bulk job's audit entry")
    assert entry.outcome == "cancelled"
    done = entry.after["count"]
    assert 0 < done < 3000 and retries_of(tenant, queue) == done
    job = wait_for(
        lambda: (j := client.get(f"/api/jobs/{job_id}", headers=headers).get_json())["notes"] and j,
        timeout=20,
        what="the note in the bulk job's timeline",
    )
    assert job["status"] == "cancelled"
    assert f"Stopped by its cancel: Retried {done}" in job["notes"][-1]["text"]
