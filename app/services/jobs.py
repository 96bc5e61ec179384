"""Job executions as the API sees them: submit, get, list, retry, cancel (J2, F5)."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.errors import BackendUnavailable, Conflict, NotFound, ValidationError
from app.models import LIVE_STATUSES, ExecutionStatus, JobExecution
from app.recording.events import payload_from_args
from app.services.dispatching import DispatchSpec, Publisher, Registry, find_definition, resolve

logger = logging.getLogger(__name__)

#: Largest page of GET /api/jobs.
MAX_PAGE = 200
DEFAULT_PAGE = 50


class Canceller(Protocol):
    """Stops a job: a persistent mark checked before it runs, and a revoke broadcast."""

    def mark_cancelled(self, job_id: str) -> None: ...

    def clear_mark(self, job_id: str) -> None: ...

    def revoke(self, job_id: str, terminate: bool) -> None: ...


def submit_job(
    session: Session,
    spec: DispatchSpec,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> JobExecution:
    """Validate, record as pending, then publish. The row is visible before the publish.

    Raises:
        ValidationError: unknown or inactive job class, or an option out of range.
        BackendUnavailable: the broker refused the message; the row is marked failed.
    """
    definition = find_definition(session, spec.job_class)
    job = resolve(spec, registry.get(spec.job_class), definition, settings)
    now = time.time()
    row = JobExecution(
        id=job.job_id,
        tenant_id=job.tenant_id,
        job_definition_id=job.job_definition_id,
        job_class=job.job_class,
        queue=job.queue,
        priority=job.priority,
        payload=payload_from_args(job.args, job.payload),
        status=ExecutionStatus.PENDING.value,
        # 0: any worker event replaces "pending", even from a host whose clock is behind.
        status_ts=0.0,
        attempts=0,
        max_attempts=job.max_attempts,
        eta=job.eta,
        tags=job.tags or None,
        retry_of=job.retry_of,
        created_at=datetime.fromtimestamp(now, UTC),
    )
    session.add(row)
    session.commit()
    try:
        publisher.publish(job)
    except Exception as exc:  # broker boundary: the accepted job must not vanish
        logger.exception("Job %s: publish failed", job.job_id)
        row.status = ExecutionStatus.FAILED.value
        row.status_ts = time.time()
        row.failed_at = datetime.now(UTC)
        row.error_message = f"could not be queued: {exc}"
        session.commit()
        raise BackendUnavailable("the broker is unavailable; the job was not queued") from exc
    return row


def get_job(session: Session, job_id: str, tenant_id: str | None) -> JobExecution:
    """The execution `job_id`, if `tenant_id` may see it (None: any tenant).

    Raises:
        NotFound: unknown id, or another tenant's job.
    """
    row = session.get(JobExecution, job_id)
    if row is None or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFound(f"no job {job_id}")
    return row


@dataclass(frozen=True)
class JobFilter:
    tenant_id: str | None
    status: str | None = None
    queue: str | None = None
    job_class: str | None = None


def encode_cursor(row: JobExecution) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises: ValidationError if the cursor was not made by `encode_cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, job_id = base64.urlsafe_b64decode(padded).decode().split("|", 1)
        return datetime.fromisoformat(created), job_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValidationError("cursor is not valid; use next_cursor from a previous page") from exc


def list_jobs(
    session: Session, flt: JobFilter, limit: int = DEFAULT_PAGE, cursor: str | None = None
) -> tuple[list[JobExecution], str | None]:
    """Newest first, keyset-paginated on (created_at, id).

    Raises:
        ValidationError: bad status, limit or cursor.
    """
    if flt.status is not None and flt.status not in {s.value for s in ExecutionStatus}:
        raise ValidationError(f"status must be one of {', '.join(s.value for s in ExecutionStatus)}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
    query = select(JobExecution)
    if flt.tenant_id is not None:
        query = query.where(JobExecution.tenant_id == flt.tenant_id)
    if flt.status:
        query = query.where(JobExecution.status == flt.status)
    if flt.queue:
        query = query.where(JobExecution.queue == flt.queue)
    if flt.job_class:
        query = query.where(JobExecution.job_class == flt.job_class)
    if cursor:
        created, job_id = decode_cursor(cursor)
        query = query.where(
            or_(
                JobExecution.created_at < created,
                and_(JobExecution.created_at == created, JobExecution.id < job_id),
            )
        )
    query = query.order_by(JobExecution.created_at.desc(), JobExecution.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def retry_job(
    session: Session,
    job_id: str,
    tenant_id: str | None,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> JobExecution:
    """Run a failed or cancelled job again, as a new execution whose `retry_of` is `job_id`.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not failed or cancelled.
        ValidationError: the job class is gone or inactive.
    """
    old = get_job(session, job_id, tenant_id)
    if old.status not in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value):
        raise Conflict(f"job {job_id} is {old.status}; only failed or cancelled jobs can be retried")
    payload = old.payload if isinstance(old.payload, dict) else {}
    args: list[Any] | None = None
    if set(payload) == {"args", "kwargs"} and isinstance(payload["args"], list):
        # A plain task called with positional arguments (see events.payload_from_args).
        args, payload = payload["args"], dict(payload["kwargs"] or {})
    spec = DispatchSpec(
        job_class=old.job_class,
        payload=payload,
        args=args,
        tenant_id=old.tenant_id,
        queue=old.queue,
        priority=old.priority,
        max_attempts=old.max_attempts,
        tags=old.tags,
        retry_of=old.id,
    )
    return submit_job(session, spec, registry=registry, publisher=publisher, settings=settings)


def cancel_job(session: Session, job_id: str, tenant_id: str | None, *, canceller: Canceller) -> JobExecution:
    """Cancel a pending, retrying or running job; a running one is terminated.

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
    now = time.time()
    # Conditional: if the recorder finished the job meanwhile, the cancel loses (409).
    changed = session.execute(
        update(JobExecution)
        .where(JobExecution.id == job_id, JobExecution.status.in_([s.value for s in LIVE_STATUSES]))
        .values(
            status=ExecutionStatus.CANCELLED.value,
            status_ts=now,
            cancelled_at=datetime.fromtimestamp(now, UTC),
            error_message="cancelled by request",
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if not changed.rowcount:  # type: ignore[attr-defined]
        canceller.clear_mark(job_id)
        session.refresh(row)
        raise Conflict(f"job {job_id} is {row.status}; only pending, retrying or running jobs can be cancelled")
    # SQL may still say "pending" for a job that just started: always ask to terminate;
    # a revoke with terminate does nothing to a job that has not started.
    canceller.revoke(job_id, terminate=True)
    session.refresh(row)
    return row


class CeleryCanceller:
    """Cancels through Redis (persistent mark) and Celery remote control (revoke)."""

    def __init__(self, redis_client: Any, control: Any) -> None:
        self.redis = redis_client
        self.control = control

    def mark_cancelled(self, job_id: str) -> None:
        self.redis.set(redis_keys.cancelled(job_id), "1", ex=redis_keys.CANCEL_MARK_TTL_S)

    def clear_mark(self, job_id: str) -> None:
        self.redis.delete(redis_keys.cancelled(job_id))

    def revoke(self, job_id: str, terminate: bool) -> None:
        self.control.revoke(job_id, terminate=terminate, signal="SIGTERM")
