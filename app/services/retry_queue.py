"""Jobs waiting for their next attempt (the console's Retries tab), and "retry now".

A job between attempts has status `retrying`; when the next attempt is due is its
`due_at` (held in Celeriac's scheduled set) or else its message's ETA (held by a worker).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.composition.submit import retry_job
from app.config import Settings
from app.errors import Conflict
from app.kernel.cancel import cancel_job
from app.kernel.lookup import get_job
from app.kernel.ports import Canceller, Publisher, Registry
from app.models import ExecutionStatus, JobExecution

#: Rows shown on the Retries tab (the soonest due first).
PAGE_SIZE = 100

_RETRYING = ExecutionStatus.RETRYING.value


@dataclass(frozen=True)
class WaitingRetries:
    rows: list[JobExecution]
    #: Every job waiting for a retry that the viewer may see (rows shows the first PAGE_SIZE).
    total: int


def next_attempt_at(row: JobExecution) -> datetime | None:
    """When the job's next attempt is due; None when it is in its queue already (no wait
    recorded, or the recorded ETA predates the job's last change: a stale one)."""
    due = row.due_at or row.eta
    if due is None or (row.updated_at is not None and due <= row.updated_at):
        return None
    return due


def waiting_retries(session: Session, tenant_id: str | None, limit: int = PAGE_SIZE) -> WaitingRetries:
    """Jobs with status `retrying` that `tenant_id` may see (None: all), the soonest due first."""
    query = select(JobExecution).where(JobExecution.status == _RETRYING)
    counted = select(func.count()).select_from(JobExecution).where(JobExecution.status == _RETRYING)
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
        counted = counted.where(JobExecution.tenant_id == tenant_id)
    due = func.coalesce(JobExecution.due_at, JobExecution.eta, JobExecution.updated_at)
    rows = list(session.scalars(query.order_by(due, JobExecution.id).limit(limit)))
    return WaitingRetries(rows, int(session.scalar(counted) or 0))


def retry_now(
    session: Session,
    job_id: str,
    tenant_id: str | None,
    *,
    canceller: Canceller,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> JobExecution:
    """Run a job waiting for its retry at once: the waiting attempt is cancelled, and the job
    runs again now as a new job (`retry_of` the old one, same payload and options).

    Why not re-publish the same message now: the waiting one sits as an ETA in a worker's
    memory and would still run when due, a second run. Cancel marks and revokes it first.

    Returns:
        The new job.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not waiting for a retry (it started, finished or was cancelled).
        ValidationError: the job class is gone or inactive.
        BackendUnavailable: the broker refused the new message.
    """
    row = get_job(session, job_id, tenant_id)
    if row.status != _RETRYING:
        raise Conflict(f"job {job_id} is {row.status}; only a job waiting for a retry can be retried now")
    cancel_job(session, job_id, tenant_id, canceller=canceller)
    return retry_job(session, job_id, tenant_id, registry=registry, publisher=publisher, settings=settings)
