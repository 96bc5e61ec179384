"""Putting a job into the system: validate, record as pending, then publish or hold (J2, J8).

The one path every dispatch takes (code, API, batch members are inserted by
app.composition.batches, schedules, retries): unique jobs take their lock here, jobs with
dependencies are held in the hub, and a publish that fails leaves the job failed, never gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import redis_keys
from app.composition.dependencies import check_dependencies
from app.composition.hub import Hub, payload_identity
from app.composition.runtime import get_hub, publish_released
from app.composition.specs import to_spec
from app.config import Settings
from app.errors import BackendUnavailable, Conflict, ValidationError
from app.kernel.dispatching import DispatchSpec, ResolvedJob, find_definition, resolve
from app.kernel.lookup import get_job
from app.kernel.ports import Publisher, Registry
from app.kernel.writer import mark_unqueued, pending_row, void_job
from app.models import LIVE_STATUSES, TERMINAL_STATUSES, ExecutionStatus, JobExecution

logger = logging.getLogger(__name__)


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
        void_job(job.job_id, settings)
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
    lock = redis_keys.unique_lock(job.tenant_id, job.job_class, identity)
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
            try:
                get_hub(settings).release_unique(lock, job.job_id)
            except Exception:  # Redis is down too: the lock expires with unique_for
                logger.warning("Job %s: unique lock not released", job.job_id)
        raise BackendUnavailable("the broker is unavailable; the job was not queued") from exc


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
