"""Cancelling a live job from the web side: mark, end the row through the writer, revoke, announce.

The canceller is a backend (app.kernel.ports.Canceller): Redis and Celery remote control in
production (app.backends.celery_canceller), an in-memory twin in unit tests.
"""

from __future__ import annotations

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.errors import Conflict
from app.kernel import writer
from app.kernel.lookup import get_job
from app.kernel.ports import Canceller
from app.kernel.system_jobs import COOPERATIVE_CANCEL
from app.models import LIVE_STATUSES, ExecutionStatus, JobExecution


def cancel_job(session: Session, job_id: str, tenant_id: str | None, *, canceller: Canceller) -> JobExecution:
    """Cancel a pending, retrying or running job; a running one is terminated (a cooperative
    one stops at its next step).

    The cancel mark in Redis outlives worker restarts, so a revoked job never runs later.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job already finished.
    """
    row = get_job(session, job_id, tenant_id)
    if ExecutionStatus(row.status) not in LIVE_STATUSES:
        raise Conflict(f"job {job_id} is {row.status}; only pending, retrying or running jobs can be cancelled")
    # Mark first, so a worker that picks the job up from now on skips it.
    canceller.mark_cancelled(job_id)
    # Conditional: if the recorder finished the job meanwhile, the cancel loses (409).
    if not writer.end_job(session, writer.cancel_event(job_id, "cancelled by request"), None):
        canceller.clear_mark(job_id)
        session.refresh(row)
        raise Conflict(f"job {job_id} is {row.status}; only pending, retrying or running jobs can be cancelled")
    # SQL may still say "pending" for a job that just started: always ask to terminate;
    # a revoke with terminate does nothing to a job that has not started. A cooperative job
    # stops by itself at its next step once it sees the mark.
    canceller.revoke(job_id, terminate=row.job_class not in COOPERATIVE_CANCEL)
    canceller.announce(job_id, "cancelled by request")
    # The answer is what was committed, not a read after it (which an outage would fail).
    set_committed_value(row, "status", ExecutionStatus.CANCELLED.value)
    set_committed_value(row, "error_message", "cancelled by request")
    return row

