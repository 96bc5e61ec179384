"""Stuck jobs (M3): processing past their class's timeout plus a grace, or on an offline worker.

Reads are bounded: only `processing` rows, through the (status, updated_at) index, at most
SCAN_LIMIT of them. A processing row's `updated_at` is the time of its latest start event,
so it measures the current attempt, not the first one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import ExecutionStatus, JobDefinition, JobExecution
from app.monitoring.workers import OFFLINE, Heartbeat, find_worker, status_of

#: Most processing rows one check reads: bounds the query when thousands are stuck.
SCAN_LIMIT = 1000
#: Largest page of stuck or slow jobs one request returns.
MAX_PAGE = 200

PAST_TIMEOUT = "past_timeout"
WORKER_OFFLINE = "worker_offline"


@dataclass(frozen=True)
class StuckJob:
    row: JobExecution
    reasons: list[str]
    running_s: float
    timeout_s: int
    worker_status: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            **job_summary(self.row),
            "reasons": self.reasons,
            "running_s": round(self.running_s, 1),
            "timeout_s": self.timeout_s,
            "worker_status": self.worker_status,
        }


def job_summary(row: JobExecution) -> dict[str, Any]:
    """The identifying fields of a job in monitoring answers."""
    return {
        "id": row.id,
        "job_class": row.job_class,
        "queue": row.queue,
        "status": row.status,
        "tenant_id": row.tenant_id,
        "worker_id": row.worker_id,
        "started_at": row.started_at.isoformat() if row.started_at else None,
    }


def class_timeouts(session: Session) -> dict[str, int]:
    """Timeout (seconds) per job class from job_definitions; one small query."""
    query = select(JobDefinition.job_class, JobDefinition.timeout).where(JobDefinition.tenant_id.is_(None))
    return {c: int(t) for c, t in session.execute(query)}


def processing_rows(session: Session, tenant_id: str | None) -> list[JobExecution]:
    """Processing rows, oldest start first, at most SCAN_LIMIT."""
    query = select(JobExecution).where(JobExecution.status == ExecutionStatus.PROCESSING.value)
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
    return list(session.scalars(query.order_by(JobExecution.updated_at).limit(SCAN_LIMIT)))


def running_seconds(row: JobExecution, now: float) -> float:
    since = row.updated_at or row.started_at
    return max(0.0, now - since.timestamp()) if since else 0.0


class WorkerLookup:
    """Registry entries by hostname, each read from Redis once per check."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._seen: dict[str, Heartbeat | None] = {}

    def get(self, hostname: str | None) -> Heartbeat | None:
        if hostname is None:
            return None
        if hostname not in self._seen:
            self._seen[hostname] = find_worker(self.redis, hostname)
        return self._seen[hostname]


def find_stuck(
    session: Session,
    redis: Any,
    settings: Settings,
    tenant_id: str | None,
    limit: int = 50,
    now: float | None = None,
) -> list[StuckJob]:
    """Stuck jobs of `tenant_id` (None: every tenant), longest running first.

    A worker never seen by the registry (heartbeats off, or forgotten) is not called
    offline: only the timeout rule applies to its jobs.
    """
    now = time.time() if now is None else now
    config = settings.monitoring
    timeouts = class_timeouts(session)
    workers = WorkerLookup(redis)
    found: list[StuckJob] = []
    for row in processing_rows(session, tenant_id):
        running = running_seconds(row, now)
        timeout = timeouts.get(row.job_class, settings.default_timeout_s)
        beat = workers.get(row.worker_id)
        worker_status = status_of(beat, config, now) if beat is not None else None
        reasons = []
        if running > timeout + config.stuck_grace_s:
            reasons.append(PAST_TIMEOUT)
        if worker_status == OFFLINE:
            reasons.append(WORKER_OFFLINE)
        if reasons:
            found.append(StuckJob(row, reasons, running, timeout, worker_status))
            if len(found) >= limit:
                break
    return found
