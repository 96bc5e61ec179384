"""Job executions as the API sees them: submit, get, list, retry, cancel (J2, F5)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import redis_keys
from app.composition.hub import Hub, payload_identity, unique_key
from app.config import Settings, get_settings
from app.errors import BackendUnavailable, Conflict, NotFound, ValidationError
from app.models import LIVE_STATUSES, TERMINAL_STATUSES, ExecutionStatus, JobExecution
from app.recording import writer
from app.recording.writer import pending_row as pending_row  # re-exported: batches insert rows too
from app.services.cursors import decode_position, encode_position
from app.services.dispatching import DispatchSpec, Publisher, Registry, ResolvedJob, find_definition, resolve

logger = logging.getLogger(__name__)

#: Largest page of GET /api/jobs.
MAX_PAGE = 200
DEFAULT_PAGE = 50


class Canceller(Protocol):
    """Stops a job: a persistent mark checked before it runs, and a revoke broadcast."""

    def mark_cancelled(self, job_id: str) -> None: ...

    def clear_mark(self, job_id: str) -> None: ...

    def revoke(self, job_id: str, terminate: bool) -> None: ...

    def announce(self, job_id: str, reason: str) -> None:
        """Tell the recorder, so batches, chains and dependants hear of the cancel."""


@dataclass(frozen=True)
class Submitted:
    """A dispatch's answer: the job, and whether this call created it (False: unique duplicate).

    `id`, `job_class`, `queue` and `status` are plain values taken before the commit, so an
    answer built from them never reads the row back (which fails during an SQL outage).
    """

    row: JobExecution
    created: bool = True
    id: str = ""
    job_class: str = ""
    queue: str = ""
    status: str = ExecutionStatus.PENDING.value


def submit_job(
    session: Session,
    spec: DispatchSpec,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> JobExecution:
    """`submit` for callers that do not care whether a unique job already existed."""
    return submit(session, spec, registry=registry, publisher=publisher, settings=settings).row


def submit(
    session: Session,
    spec: DispatchSpec,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> Submitted:
    """Validate, record as pending, then publish (or hold until dependencies completed).

    The row is visible before the publish. A unique job whose twin is pending or running
    returns the twin and queues nothing.

    Raises:
        ValidationError: unknown or inactive job class, an option out of range, or an
            unknown, foreign or cyclic dependency.
        BackendUnavailable: the broker refused the message; the row is marked failed.
    """
    from app.composition.runtime import get_hub
    from app.services.dependencies import check_dependencies

    definition = find_definition(session, spec.job_class, spec.tenant_id)
    info = registry.get(spec.job_class)
    job = resolve(spec, info, definition, settings)
    if job.depends_on:
        check_dependencies(session, job.job_id, job.tenant_id, job.depends_on)
    lock = None
    if job.unique_for:
        lock, twin = _take_unique_lock(session, job, info.unique_by if info else (), get_hub(settings))
        if twin is not None:
            return Submitted(twin, False, twin.id, twin.job_class, twin.queue, twin.status)
    row = pending_row(job, lock)
    done = Submitted(row, True, job.job_id, job.job_class, job.queue)
    session.add(row)
    try:
        session.commit()
    except SQLAlchemyError as exc:
        # The commit may have landed although its answer was lost: mark the job for workers
        # to skip, so a row the reconciler finds later is never run for a dispatch that failed.
        session.rollback()
        _void(job.job_id, settings)
        raise BackendUnavailable("the database is unavailable; the job was not accepted") from exc
    if job.depends_on:
        _hold_until_dependencies(session, job, settings, publisher)
        return done
    _publish_or_fail(session, job, publisher, lock, settings)
    return done


def _take_unique_lock(
    session: Session, job: ResolvedJob, unique_by: tuple[str, ...], hub: Hub
) -> tuple[str, JobExecution | None]:
    """The lock key, and the twin job if another live job holds it (J8)."""
    identity = job.unique_id or payload_identity(job.payload, unique_by)
    lock = unique_key(job.tenant_id, job.job_class, identity)
    assert job.unique_for is not None
    for _ in range(2):
        holder = hub.acquire_unique(lock, job.job_id, job.unique_for)
        if holder is None:
            return lock, None
        twin = session.get(JobExecution, holder)
        if twin is not None and ExecutionStatus(twin.status) in LIVE_STATUSES:
            return lock, twin
        # The holder finished (its release is still on its way) or never got a row.
        hub.release_unique(lock, holder)
    raise Conflict("another dispatch of this unique job is in progress; try again")


def _hold_until_dependencies(session: Session, job: ResolvedJob, settings: Settings, publisher: Publisher) -> None:
    """Hold the job in Redis; dependencies that already finished are resolved here.

    Held first, statuses read after: a dependency that finishes in between is seen either
    here or by the recorder (which reads the dependants after its commit), never by neither.
    """
    from app.composition.runtime import get_hub, publish_released
    from app.composition.specs import to_spec

    hub = get_hub(settings)
    assert job.depends_on is not None
    hub.hold(job.job_id, to_spec(job), job.depends_on)
    session.expire_all()
    finished = session.execute(
        select(JobExecution.id, JobExecution.status).where(
            JobExecution.id.in_(job.depends_on), JobExecution.status.in_([s.value for s in TERMINAL_STATUSES])
        )
    ).all()
    released = False
    for dep_id, status in finished:
        ids, _cancelled = hub.resolve(dep_id, status, f"dependency {dep_id} {status}")
        released = released or bool(ids)
    if released:
        publish_released(session, settings, publisher)


def _publish_or_fail(
    session: Session, job: ResolvedJob, publisher: Publisher, lock: str | None, settings: Settings
) -> None:
    try:
        publisher.publish(job)
    except Exception as exc:  # broker boundary: the accepted job must not vanish
        logger.exception("Job %s: publish failed", job.job_id)
        mark_unqueued(session, job.job_id, f"could not be queued: {exc}", settings)
        if lock is not None:
            from app.composition.runtime import get_hub

            try:
                get_hub(settings).release_unique(lock, job.job_id)
            except Exception:  # Redis is down too: the lock expires with unique_for
                logger.warning("Job %s: unique lock not released", job.job_id)
        raise BackendUnavailable("the broker is unavailable; the job was not queued") from exc


def mark_unqueued(session: Session, job_id: str, reason: str, settings: Settings | None = None) -> None:
    """An accepted job whose publish failed: failed with the reason, never silently gone.

    Whether the broker got the message is unknown (a timeout after sending it), so the job
    is also marked cancelled for workers: if its message did arrive, a worker skips it
    instead of running a job whose dispatch answered an error. If Redis is down now, the
    reconciler sets that mark, and announces the failure, once it is back.
    """
    from app.redis_client import get_quick_redis

    event = writer.not_queued_event(job_id, reason)
    writer.end_job(session, event, None)
    session.expire_all()
    try:
        pipe = get_quick_redis((settings or get_settings()).redis_url).pipeline(transaction=True)
        add_cancel_mark(pipe, job_id)
        writer.add_announcement(pipe, event)
        pipe.execute()
    except Exception as exc:  # Redis boundary: the reconciler marks and announces it later
        logger.warning("Job %s: not marked for workers to skip yet (%s)", job_id, exc)


def _void(job_id: str, settings: Settings) -> None:
    from app.redis_client import get_quick_redis

    try:
        pipe = get_quick_redis(settings.redis_url).pipeline(transaction=True)
        add_cancel_mark(pipe, job_id)
        pipe.execute()
    except Exception as exc:  # Redis is down too: nothing was published either
        logger.warning("Job %s: not marked void (%s)", job_id, exc)


def add_cancel_mark(pipe: Any, job_id: str) -> None:
    """Queue the commands that mark `job_id` cancelled for every worker (see CancelCache)."""
    now = time.time()
    pipe.set(redis_keys.cancelled(job_id), "1", ex=redis_keys.CANCEL_MARK_TTL_S)
    pipe.zadd(redis_keys.CANCELLED_RECENT, {job_id: now})
    pipe.zremrangebyscore(redis_keys.CANCELLED_RECENT, "-inf", now - redis_keys.CANCEL_MARK_TTL_S)
    pipe.incr(redis_keys.CANCELLED_VERSION)


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
    return encode_position(row.created_at, row.id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises: ValidationError if the cursor was not made by `encode_cursor`."""
    created, (job_id,) = decode_position(cursor, 2, "use next_cursor from a previous page")
    return created, job_id


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
        # A row-value comparison: SQLite and PostgreSQL seek the (tenant, created_at, id)
        # index with it, where the equivalent OR made SQLite walk half the table.
        query = query.where(tuple_(JobExecution.created_at, JobExecution.id) < tuple_(created, job_id))
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
    payload: dict[str, Any] | None = None,
) -> JobExecution:
    """Run a failed or cancelled job again, as a new execution whose `retry_of` is `job_id`.

    `payload`, when given, replaces the old one (the console's "retry with edited payload");
    everything else (class, tenant, queue, priority, tries, tags) is kept.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not failed or cancelled, or a new payload for an encrypted job.
        ValidationError: the job class is gone or inactive, or the payload is refused.
    """
    old = get_job(session, job_id, tenant_id)
    if old.status not in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value):
        raise Conflict(f"job {job_id} is {old.status}; only failed or cancelled jobs can be retried")
    if payload is not None and old.encrypted:
        raise Conflict(f"job {job_id} has an encrypted payload; it can only be retried as it is")
    if payload is None:
        payload = old.payload if isinstance(old.payload, dict) else {}
    args: list[Any] | None = None
    if set(payload) == {"args", "kwargs"} and isinstance(payload["args"], list):
        # A plain task called with positional arguments (see events.payload_from_args).
        if not isinstance(payload["kwargs"], dict | None):
            raise ValidationError("kwargs must be a JSON object")
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
        encrypted=old.encrypted or None,
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
    # Conditional: if the recorder finished the job meanwhile, the cancel loses (409).
    if not writer.end_job(session, writer.cancel_event(job_id, "cancelled by request"), None):
        canceller.clear_mark(job_id)
        session.refresh(row)
        raise Conflict(f"job {job_id} is {row.status}; only pending, retrying or running jobs can be cancelled")
    # SQL may still say "pending" for a job that just started: always ask to terminate;
    # a revoke with terminate does nothing to a job that has not started.
    canceller.revoke(job_id, terminate=True)
    canceller.announce(job_id, "cancelled by request")
    # The answer is what was committed, not a read after it (which an outage would fail).
    set_committed_value(row, "status", ExecutionStatus.CANCELLED.value)
    set_committed_value(row, "error_message", "cancelled by request")
    return row


class CeleryCanceller:
    """Cancels through Redis (persistent mark) and Celery remote control (revoke)."""

    def __init__(self, redis_client: Any, control: Any) -> None:
        self.redis = redis_client
        self.control = control

    def mark_cancelled(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        add_cancel_mark(pipe, job_id)
        pipe.execute()

    def clear_mark(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(redis_keys.cancelled(job_id))
        pipe.zrem(redis_keys.CANCELLED_RECENT, job_id)
        pipe.incr(redis_keys.CANCELLED_VERSION)
        pipe.execute()

    def revoke(self, job_id: str, terminate: bool) -> None:
        self.control.revoke(job_id, terminate=terminate, signal="SIGTERM")

    def announce(self, job_id: str, reason: str) -> None:
        """A held job is dropped (never published); the cancel event reaches the recorder."""
        from app.composition.hub import held_key
        from app.recording.buffer import encode_event
        from app.recording.writer import cancel_event as cancelled

        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(held_key(job_id))
        pipe.xadd(redis_keys.EVENTS_STREAM, {"e": encode_event(cancelled(job_id, reason))})
        pipe.execute()
