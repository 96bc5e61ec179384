"""Retention (E3): purge finished executions past their age, in bounded batches.

Age is counted from the last change (`updated_at`, the finish time of a finished job),
through the (status, updated_at) index, in paced batches, so a purge of millions never
keeps a dispatch waiting long (for SQLite's one write lock, or behind a burst of WAL).
Failed jobs are kept longer than the others, and failure groups not seen for that long go
with them. Live jobs are never purged. Idempotency keys go after 24 hours (they are only
promised for that long). Job stats are rolled up to hours and days and the oldest days
deleted (app.kernel.stats_rollup); /metrics' running totals are never decreased.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.failures.dead_letter import delete_executions
from app.kernel.stats_rollup import RollupReport, roll_up
from app.models import ExecutionStatus, FailureGroup, JobExecution
from app.services.idempotency import purge_expired as purge_expired_keys

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PurgeReport:
    executions: int
    failed: int
    groups: int
    #: What the stats rollup moved and deleted (minute rows, hour rows, day rows).
    stats: RollupReport = RollupReport(0, 0, 0)

    def as_dict(self) -> dict[str, int]:
        return {
            "executions": self.executions,
            "failed": self.failed,
            "groups": self.groups,
            "stats_minutes_rolled": self.stats.minutes,
            "stats_hours_rolled": self.stats.hours,
            "stats_days_purged": self.stats.days_purged,
        }


#: A purge transaction aims to take about this long, then the purge pauses as long again.
#: SQLite: a dispatch waiting in its busy handler (which retries every 1 to 25 ms in its first
#: 100 ms) gets the one write lock in the pause; a fixed 1,000-row batch held it 200 ms at a
#: million rows and kept a dispatch waiting up to 0.7 s. PostgreSQL: the WAL a purge writes
#: in a burst delayed a dispatch's commit up to 1 s (bench.purge_latency).
HOLD_S = 0.02
#: The least rows a paced batch deletes, so a purge always moves on.
MIN_BATCH = 20


def next_batch_size(size: int, took_s: float, most: int) -> int:
    """The batch size that should take HOLD_S, from one that took `took_s` (at most
    doubling at a time, between MIN_BATCH and `most`)."""
    wanted = int(size * HOLD_S / max(took_s, 0.001))
    return max(MIN_BATCH, min(most, 2 * size, wanted))


def _purge_status(session: Session, status: str, cutoff: datetime, batch_size: int) -> int:
    purged = 0
    size = batch_size
    while True:
        ids = list(
            session.scalars(
                select(JobExecution.id)
                .where(JobExecution.status == status, JobExecution.updated_at < cutoff)
                .limit(size)
            )
        )
        if not ids:
            return purged
        started = time.monotonic()
        purged += delete_executions(session, ids, only_status=status)
        session.commit()  # one short transaction per batch
        took = time.monotonic() - started
        size = next_batch_size(size, took, batch_size)
        time.sleep(min(took, 0.05))  # the database left to other writers as long


def purge_history(session: Session, settings: Settings, now: datetime | None = None) -> PurgeReport:
    """Delete executions (and attempts) past CELERIAC_RETENTION_DAYS, failed ones past
    CELERIAC_FAILED_RETENTION_DAYS, failure groups last seen before that, and idempotency
    keys past their 24 hours; roll job stats up and delete those past CELERIAC_STATS_RETENTION_DAYS."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=settings.retention_days)
    failed_cutoff = now - timedelta(days=settings.failed_retention_days)
    size = settings.retention_batch_size
    others = sum(
        _purge_status(session, status.value, cutoff, size)
        for status in (ExecutionStatus.COMPLETED, ExecutionStatus.CANCELLED)
    )
    failed = _purge_status(session, ExecutionStatus.FAILED.value, failed_cutoff, size)
    groups = session.execute(
        delete(FailureGroup)
        .where(FailureGroup.last_seen_at < failed_cutoff)
        .execution_options(synchronize_session=False)
    )
    keys = purge_expired_keys(session, now)
    session.commit()
    stats = roll_up(session, settings.stats_retention, now)
    report = PurgeReport(others + failed, failed, int(groups.rowcount), stats)  # type: ignore[attr-defined]
    logger.info(
        "Retention: purged %d executions (%d failed) and %d failure groups", others + failed, failed, report.groups
    )
    logger.info("Retention: purged %d idempotency keys older than 24 h", keys)
    return report
