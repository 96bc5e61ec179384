"""Putting a job into the system: validate, record as pending, then publish or hold (J2, J8).

The one path every dispatch takes (code, API, batch members are inserted by
app.composition.batches, schedules, retries): unique jobs take their lock here, jobs with
dependencies are held in the hub, and a publish that fails leaves the job failed, never gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from app import redis_keys
from app.composition.dependencies import check_dependencies
from app.composition.hub import Hub, payload_identity
from app.composition.runtime import get_hub, publish_released
from app.composition.specs import to_spec
from app.config import Settings
from app.errors import BackendUnavailable, Conflict, QueueFull, ValidationError
from app.kernel import attached, dispatch_defaults
from app.kernel.concurrency_claims import record_limit
from app.kernel.dispatching import DispatchSpec, ResolvedJob, resolve
from app.kernel.lookup import get_job
from app.kernel.ports import Publisher, Registry
from app.kernel.queue_defaults import QueueDefaults, check_room
from app.kernel.row_insert import insert_rows
from app.kernel.scheduled import HoldingPublisher, hold_values, holds
from app.kernel.writer import mark_unqueued, pending_values, void_job
from app.models import LIVE_STATUSES, TERMINAL_STATUSES, ExecutionStatus, JobExecution
from app.redis_client import get_quick_redis, get_redis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submitted:
    """A dispatch's answer: the job, and whether this call created it (False: unique duplicate).

    `id`, `job_class`, `queue` and `status` are plain values taken before the commit, so an
    answer built from them never reads the row back (which fails during an SQL outage).
    """

    id: str
    job_class: str
    queue: str
    created: bool = True
    status: str = ExecutionStatus.PENDING.value
    #: The unique twin's row, or the new row's values (inserted with Core, not the ORM).
    source: JobExecution | dict[str, Any] | None = None

    @property
    def row(self) -> JobExecution:
        """The job's row: the twin's, or a detached copy of the one this call inserted."""
        if isinstance(self.source, JobExecution):
            return self.source
        return JobExecution(**(self.source or {"id": self.id, "job_class": self.job_class, "queue": self.queue}))


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
    returns the twin and queues nothing. Definitions and queue settings come from this
    process's copies (app.kernel.dispatch_defaults); the message is built before the
    transaction, which is a single INSERT, so the commit is followed by the publish alone.

    Raises:
        ValidationError: unknown or inactive job class, an option out of range, or an
            unknown, foreign or cyclic dependency.
        BackendUnavailable: the broker refused the message; the row is marked failed.
        QueueFull: the queue already holds its `max_pending` pending jobs.
    """
    published_at = time.time()
    job, queues, due = _resolve_checked(session, spec, registry, settings, publisher, published_at)
    if job.depends_on:
        check_dependencies(session, job.job_id, job.tenant_id, job.depends_on)
    lock = None
    if job.unique_for:
        info = registry.get(spec.job_class)
        lock, twin = _take_unique_lock(session, job, info.unique_by if info else (), get_hub(settings))
        if twin is not None:
            return Submitted(twin.id, twin.job_class, twin.queue, False, twin.status, twin)
    try:
        check_room(session, queues(job.queue))
    except QueueFull:
        if lock is not None:
            get_hub(settings).release_unique(lock, job.job_id)
        raise
    values = pending_values(job, lock, published_at)
    if due is not None:
        hold_values(values, due, job.expires_s)
    done = Submitted(job.job_id, job.job_class, job.queue, source=values)
    try:
        # A session that has not begun (Job.dispatch with its definition kept here) writes the
        # row in autocommit: one statement, committed (fsync) as it returns; no BEGIN, no COMMIT.
        options = {} if _has_begun(session) else {"isolation_level": "AUTOCOMMIT"}
        insert_rows(session.connection(execution_options=options), [values])
        session.commit()
    except SQLAlchemyError as exc:
        # The commit may have landed although its answer was lost: mark the job for workers
        # to skip, so a row the reconciler finds later is never run for a dispatch that failed.
        session.rollback()
        void_job(job.job_id, settings)
        raise BackendUnavailable("the database is unavailable; the job was not accepted") from exc
    if job.concurrency:
        record_limit(get_redis(settings.redis_url), job.concurrency, explicit=spec.concurrency_limit is not None)
    if job.depends_on:
        _hold_until_dependencies(session, job, settings, publisher)
        return done
    if due is not None:
        publisher = HoldingPublisher(get_hub(settings).redis, due)
    _publish_or_fail(session, job, publisher, lock, settings)
    return done


def _has_begun(session: Session) -> bool:
    """Whether `session` (or the one a Flask-SQLAlchemy scoped session stands for) began."""
    actual = session() if isinstance(session, scoped_session) else session
    return actual.in_transaction()


Resolved = tuple[ResolvedJob, Callable[[str], QueueDefaults], datetime | None]


def _resolve_checked(
    session: Session, spec: DispatchSpec, registry: Registry, settings: Settings, publisher: Publisher, at: float
) -> Resolved:
    """`spec` resolved, and its message built (`publisher.prepare`, stamped `at`), with this
    process's copies of definitions and queue settings while their token's GET is on its way
    (app.kernel.dispatch_defaults.PendingCheck); again, with fresh ones, if they were stale.

    Raises:
        ValidationError: as `resolve`, with current definitions and queue settings.
    """
    with dispatch_defaults.PendingCheck(get_quick_redis(settings.redis_url)) as check:
        try:
            resolved: Resolved | None = _resolved(session, spec, registry, settings, check.defaults, publisher, at)
            refusal = None
        except ValidationError as exc:  # maybe a stale copy's verdict: decided below
            resolved, refusal = None, exc
        fresh = check.finish()
    if fresh is not None:
        return _resolved(session, spec, registry, settings, fresh, publisher, at)
    if refusal is not None:
        raise refusal
    assert resolved is not None
    return resolved


def _resolved(
    session: Session,
    spec: DispatchSpec,
    registry: Registry,
    settings: Settings,
    defaults: Any,
    publisher: Publisher,
    at: float,
) -> Resolved:
    definition = defaults.definition(session, spec.job_class, spec.tenant_id)
    queues = partial(defaults.queue, session)
    job = resolve(spec, registry.get(spec.job_class), definition, settings, queues)
    # A delay too long for a broker ETA waits in Celeriac's scheduled set (app.kernel.scheduled).
    due = job.eta if holds(job.delay_s, settings) and not job.depends_on else None
    prepare = getattr(publisher, "prepare", None)
    if prepare is not None and due is None and not job.depends_on:
        prepare(job, at)  # the message, before the transaction: the commit is followed by the push alone
    return job, queues, due


def resolve_spec(
    session: Session, spec: DispatchSpec, registry: Registry, settings: Settings
) -> tuple[ResolvedJob, Callable[[str], QueueDefaults]]:
    """`spec` resolved with this process's copies of its definition and queue settings, and
    the queue settings reader it used (also what the max_pending check reads).

    Raises:
        ValidationError: as `resolve`.
    """
    defaults = dispatch_defaults.current(get_quick_redis(settings.redis_url))
    definition = defaults.definition(session, spec.job_class, spec.tenant_id)
    queues = partial(defaults.queue, session)
    return resolve(spec, registry.get(spec.job_class), definition, settings, queues), queues


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
    everything else (class, tenant, queue, priority, tries, tags) is kept. A job recorded
    from Celery's events (app.kernel.attached) is sent by name to the queue it came from,
    for the project's own workers.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not failed or cancelled, or a new payload for an encrypted job,
            or an attached job whose arguments, queue or name the events did not tell.
        ValidationError: the job class is gone or inactive, or the payload is refused.
    """
    old = get_job(session, job_id, tenant_id)
    if old.status not in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value):
        raise Conflict(f"job {job_id} is {old.status}; only failed or cancelled jobs can be retried")
    if payload is not None and old.encrypted:
        raise Conflict(f"job {job_id} has an encrypted payload; it can only be retried as it is")
    priority = old.priority
    if attached.is_attached(old):
        payload = attached.resend_payload(old, payload)
        registry = attached.ByNameRegistry(registry, old)
    elif attached.is_foreign(old, registry):
        # A task of a project's own instrumented workers (celeriac.instrument): sent by name,
        # to the plain list of its queue, the one a worker with Celery's default priority
        # steps always reads.
        registry = attached.ByNameRegistry(registry, old)
        priority = attached.PLAIN_LIST_PRIORITY
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
        priority=priority,
        # 0 is a plain task's "no limit" (max_retries=None): the task's own limit applies again.
        max_attempts=old.max_attempts if 1 <= old.max_attempts <= 100 else None,
        tags=old.tags,
        retry_of=old.id,
        encrypted=old.encrypted or None,
        concurrency_key=old.concurrency_key,
    )
    return submit_job(session, spec, registry=registry, publisher=publisher, settings=settings)
