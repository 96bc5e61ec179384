"""Running jobs with their progress, for views that follow work live (`flask queue top`).

Reads only: the recorder writes progress (app.kernel.progress).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ExecutionStatus, JobExecution

#: Most running jobs listed at once.
MAX_LISTED = 500


@dataclass(frozen=True)
class RunningJob:
    id: str
    job_class: str
    queue: str
    worker_id: str | None
    #: 0-100, or None while the job never reported progress.
    progress: int | None
    progress_done: int | None
    progress_total: int | None
    progress_message: str | None


def running_progress(
    session: Session, tenant_id: str | None, queue: str | None = None, limit: int = MAX_LISTED
) -> list[RunningJob]:
    """Jobs processing now (of `tenant_id`; None: every tenant), the longest-running first."""
    j = JobExecution
    query = select(j).where(j.status == ExecutionStatus.PROCESSING.value)
    if tenant_id is not None:
        query = query.where(j.tenant_id == tenant_id)
    if queue is not None:
        query = query.where(j.queue == queue)
    rows = session.scalars(query.order_by(j.started_at.asc(), j.id).limit(limit))
    return [
        RunningJob(
            row.id,
            row.job_class,
            row.queue,
            row.worker_id,
            row.progress,
            row.progress_done,
            row.progress_total,
            row.progress_message,
        )
        for row in rows
    ]
