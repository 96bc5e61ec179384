"""Retention (E3): old finished executions purged in batches, failed ones kept longer, live ones never."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from app.db import db
from app.models import AuditLog, FailureGroup, JobAttempt, JobExecution
from app.services.retention import purge_history

NOW = datetime(2030, 6, 1, tzinfo=UTC)


def _row(status: str, age_days: int, tenant: str) -> str:
    job_id = str(uuid.uuid4())
    when = NOW - timedelta(days=age_days)
    db.session.add(JobExecution(id=job_id, tenant_id=tenant, job_class="demo.echo", status=status, created_at=when))
    db.session.add(JobAttempt(execution_id=job_id, attempt_key=job_id[:20], number=1, status=status, started_at=when))
    db.session.commit()
    # updated_at has an onupdate default: set it after the insert.
    db.session.execute(update(JobExecution).where(JobExecution.id == job_id).values(updated_at=when))
    db.session.commit()
    return job_id


def _alive(ids: list[str]) -> set[str]:
    db.session.expire_all()
    return set(db.session.scalars(select(JobExecution.id).where(JobExecution.id.in_(ids))))


def test_purge_keeps_recent_live_and_failed_within_their_longer_retention(app: Any, settings: Any) -> None:
    tenant = "ret-" + uuid.uuid4().hex[:8]
    old = [_row("completed", 40, tenant) for _ in range(5)] + [_row("cancelled", 31, tenant)]
    kept = [
        _row("completed", 10, tenant),
        _row("failed", 40, tenant),
        _row("processing", 400, tenant),
        _row("pending", 400, tenant),
    ]
    old_failed = _row("failed", 100, tenant)
    group_at = NOW - timedelta(days=120)
    db.session.add(
        FailureGroup(
            tenant_id=tenant,
            fingerprint="f" * 32,
            exception_type="E",
            message="",
            count=1,
            first_seen_at=group_at,
            last_seen_at=group_at,
        )
    )
    db.session.commit()
    small_batches = replace(settings, retention_batch_size=2)
    report = purge_history(db.session, small_batches, now=NOW)
    assert report.executions >= 7 and report.failed >= 1 and report.groups >= 1
    assert _alive(old + kept + [old_failed]) == set(kept)
    assert db.session.scalars(select(JobAttempt).where(JobAttempt.execution_id.in_(old))).all() == []
    assert db.session.get(FailureGroup, (tenant, "f" * 32)) is None
    # Run again: nothing left to do.
    assert purge_history(db.session, small_batches, now=NOW).executions == 0


def test_cli_purge_history_reports_and_audits(app: Any) -> None:
    _row("completed", 10_000, "ret-cli")
    result = app.test_cli_runner().invoke(args=["celeriac", "purge-history"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Purged ") and "failure groups" in result.output
    assert "minute rows rolled into hours" in result.output
    assert db.session.scalars(select(AuditLog).where(AuditLog.action == "history.purge")).first() is not None


def test_purge_task_is_registered_for_beat() -> None:
    from app.celery_app import celery_app

    celery_app.loader.import_default_modules()
    assert "celeriac.maintenance.purge_history" in celery_app.tasks
    assert celery_app.conf.beat_schedule["celeriac-purge-history"]["task"] == "celeriac.maintenance.purge_history"


def test_purge_task_runs_the_same_purge(app: Any) -> None:
    from tasks.maintenance import purge_history_task

    result = purge_history_task.run()
    assert set(result) == {
        "executions",
        "failed",
        "groups",
        "stats_minutes_rolled",
        "stats_hours_rolled",
        "stats_days_purged",
    }


def test_purge_batches_shrink_to_hold_the_write_lock_briefly_and_grow_back_slowly() -> None:
    from app.services.retention import HOLD_S, MIN_BATCH, next_batch_size

    # 1,000 rows took 200 ms (a million-row table on SQLite): a tenth of the rows next time.
    assert next_batch_size(1000, 0.2, 1000) == 100
    # Far too slow (a disk stall): never below the floor, so the purge still moves on.
    assert next_batch_size(100, 5.0, 1000) == MIN_BATCH
    # Quick batches grow, at most doubling, and never past the configured size.
    assert next_batch_size(100, HOLD_S / 10, 1000) == 200
    assert next_batch_size(800, 0.0, 1000) == 1000
