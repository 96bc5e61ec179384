"""Jobs waiting for a due time (the console's Scheduled tab): delayed and long-delayed.

A `pending` job waits either as a broker ETA (a short delay: its message is held by a
worker until due, `eta` in the future) or in Celeriac's scheduled set (a long delay:
`due_at`, app.kernel.scheduled). Retries waiting for their next attempt are the Retries
tab's. Soonest due first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.models import ExecutionStatus, JobExecution

#: Rows shown on the Scheduled tab.
PAGE_SIZE = 100


@dataclass(frozen=True)
class Delayed:
    rows: list[JobExecution]
    #: Every delayed job the viewer may see (rows holds the first PAGE_SIZE).
    total: int


def delayed_jobs(
    session: Session, tenant_id: str | None, limit: int = PAGE_SIZE, now: datetime | None = None
) -> Delayed:
    """Pending jobs with a due time still ahead (or held in the set), the soonest first."""
    moment = now or datetime.now(UTC)
    waiting = (
        JobExecution.status == ExecutionStatus.PENDING.value,
        or_(JobExecution.due_at.is_not(None), JobExecution.eta > moment),
    )
    query = select(JobExecution).where(*waiting)
    counted = select(func.count()).select_from(JobExecution).where(*waiting)
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
        counted = counted.where(JobExecution.tenant_id == tenant_id)
    due = func.coalesce(JobExecution.due_at, JobExecution.eta)
    rows = list(session.scalars(query.order_by(due, JobExecution.id).limit(limit)))
    return Delayed(rows, int(session.scalar(counted) or 0))
