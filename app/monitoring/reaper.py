"""Orphan reaper (M3): processing jobs whose worker has been offline too long.

Only a worker the registry knows and calls offline for `reap_after_s` counts: a job on a
live worker, or on one never seen (heartbeats off), is never touched. Each job is ended by
a conditional update (still processing, same worker), so runs are idempotent and lose
cleanly to the recorder. The job's cancel mark is set too: when the broker redelivers the
dead worker's message (after the visibility timeout), the worker skips it instead of
running the job a second time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import AppError
from app.models import ExecutionStatus, JobExecution
from app.monitoring.stuck import WorkerLookup, processing_rows
from app.services import audit
from app.services.dispatching import Publisher, Registry
from app.services.jobs import CeleryCanceller, retry_job

logger = logging.getLogger(__name__)


@dataclass
class ReapReport:
    failed: list[str] = field(default_factory=list)
    requeued: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"failed": len(self.failed), "requeued": len(self.requeued), "job_ids": self.failed}


def reap_orphans(
    session: Session,
    redis: Any,
    settings: Settings,
    *,
    actor: str,
    registry: Registry | None = None,
    publisher: Publisher | None = None,
    now: float | None = None,
) -> ReapReport:
    """Fail (or, by CELERIAC_REAP_POLICY, fail and re-queue) orphaned executions; audited.

    Args:
        registry, publisher: needed by the "requeue" policy only.
    """
    now = time.time() if now is None else now
    config = settings.monitoring
    workers = WorkerLookup(redis)
    report = ReapReport()
    for row in processing_rows(session, None):
        beat = workers.get(row.worker_id)
        if beat is None:
            continue
        gone_since = beat.stopped_at or beat.last_heartbeat
        if now - gone_since <= max(config.reap_after_s, config.offline_after_s):
            continue
        seen = datetime.fromtimestamp(beat.last_heartbeat, UTC).isoformat()
        reason = (
            f"worker {row.worker_id} went offline (last heartbeat {seen}) while the job was processing; "
            "failed by the stuck-job reaper"
        )
        if not _fail(session, row, reason, now):
            continue  # the recorder finished it meanwhile
        CeleryCanceller(redis, None).mark_cancelled(row.id)
        report.failed.append(row.id)
        after: dict[str, Any] = {"status": "failed", "policy": config.reap_policy}
        if config.reap_policy == "requeue" and registry is not None and publisher is not None:
            try:
                new = retry_job(session, row.id, None, registry=registry, publisher=publisher, settings=settings)
                report.requeued[row.id] = new.id
                after["requeued_as"] = new.id
            except AppError as exc:  # class gone or inactive, broker down: stays failed, say why
                logger.warning("Job %s: reaped but not re-queued: %s", row.id, exc)
                after["requeue_error"] = str(exc)
        audit.record(
            session,
            actor=actor,
            action="job.reap",
            tenant_id=row.tenant_id,
            target_type="job",
            target_id=row.id,
            before={"status": "processing", "worker_id": row.worker_id},
            after=after,
            reason=reason,
        )
        session.commit()
        logger.warning("Job %s: %s", row.id, reason)
    return report


def _fail(session: Session, row: JobExecution, reason: str, now: float) -> bool:
    changed = session.execute(
        update(JobExecution)
        .where(
            JobExecution.id == row.id,
            JobExecution.status == ExecutionStatus.PROCESSING.value,
            JobExecution.worker_id == row.worker_id,
        )
        .values(
            status=ExecutionStatus.FAILED.value,
            status_ts=now,
            failed_at=datetime.fromtimestamp(now, UTC),
            error_message=reason,
            exception_type="WorkerLost",
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(changed.rowcount)  # type: ignore[attr-defined]
