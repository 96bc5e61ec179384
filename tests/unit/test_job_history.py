"""A job's story on its detail page: queue wait, timeline order, retry lineage both ways."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from app.db import db
from app.models import JobAttempt, JobExecution
from app.services import job_history
from tests.job_rows import T0, add_job


def test_wait_counts_from_the_eta_when_the_job_was_delayed(app: Any, unique: str) -> None:
    row = JobExecution(created_at=T0, eta=T0 + timedelta(seconds=60), started_at=T0 + timedelta(seconds=61.5))
    assert job_history.wait_ms(row) == 1500
    row.eta = None
    assert job_history.wait_ms(row) == 61500
    row.started_at = None
    assert job_history.wait_ms(row) is None


def test_timeline_runs_from_creation_through_attempts_to_the_retry(app: Any, unique: str) -> None:
    tenant = f"h-{unique}"
    job = add_job(tenant, "failed", failed_at=T0 + timedelta(seconds=9), error_message="boom", attempts=2)
    for number, (start, end, status) in enumerate([(1, 2, "retrying"), (5, 9, "failed")], start=1):
        db.session.add(
            JobAttempt(
                execution_id=job,
                attempt_key=f"{job[:24]}-{number}",
                number=number,
                status=status,
                worker_id="w1",
                started_at=T0 + timedelta(seconds=start),
                finished_at=T0 + timedelta(seconds=end),
                error_message="boom",
            )
        )
    db.session.commit()
    retry = add_job(tenant, "pending", minutes=1, retry_of=job)
    row = db.session.get(JobExecution, job)
    family = job_history.lineage(db.session, row)
    events = job_history.timeline(row, job_history.attempts(db.session, job), family.descendants)
    assert [e.label for e in events] == [
        "Created",
        "Attempt 1 started",
        "Attempt 1 failed, will retry",
        "Attempt 2 started",
        "Attempt 2 failed",
        "Failed",
        "Retried as a new job",
    ]
    assert events[-1].job_id == retry and events[-2].detail is None  # the attempt line said "boom"


def test_lineage_follows_retries_up_and_down_within_the_tenant(app: Any, unique: str) -> None:
    tenant = f"h-{unique}"
    first = add_job(tenant, "failed")
    second = add_job(tenant, "failed", minutes=1, retry_of=first)
    third = add_job(tenant, "pending", minutes=2, retry_of=second)
    add_job(f"{tenant}-x", "pending", minutes=3, retry_of=second)  # another tenant's row naming it
    family = job_history.lineage(db.session, db.session.get(JobExecution, second))
    assert [r.id for r in family.ancestors] == [first] and [r.id for r in family.descendants] == [third]
    top = job_history.lineage(db.session, db.session.get(JobExecution, first))
    assert top.ancestors == [] and [r.id for r in top.descendants] == [second, third]


def test_timeline_shows_what_the_reconciler_and_lost_workers_left_as_notes(app: Any, unique: str) -> None:
    notes = [
        {"at": (T0 + timedelta(seconds=5)).isoformat(), "text": "Worker lost (WorkerLostError); put back in its queue"},
        {"at": (T0 + timedelta(seconds=9)).isoformat(), "text": "Outcome recovered from the result backend: ..."},
    ]
    row = db.session.get(JobExecution, add_job(unique, "completed", notes=notes))
    lines = [(e.label, e.detail) for e in job_history.timeline(row, [], []) if e.status == "warning"]
    assert [label for label, _ in lines] == ["Worker lost", "Outcome recovered"]
    assert lines[0][1] is not None and "put back in its queue" in lines[0][1]
