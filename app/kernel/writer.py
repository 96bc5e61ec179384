"""The one writer of job rows (R1): every status a job row takes goes through this module.

- `pending_row`: a dispatch's row, inserted and committed before its message is published.
- `EventApplier` (app.kernel.apply), used by the recorder for workers' events and by
  the reconciler for what it finds: it folds events into rows and, in the same
  transaction, keeps the per-minute aggregates and the failure groups.
- `end_job`: the web process ends a live job (a cancel, a job the broker refused) with an
  event applied here in its own transaction, then announces the same event on the stream:
  the recorder finds the row already ended (so nothing is counted twice) and runs the
  follow-ups (batch, chain, dependants, unique lock) as it does for a worker's event.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings, get_settings
from app.kernel.apply import EventApplier
from app.kernel.concurrency_claims import user_key
from app.kernel.dispatching import ResolvedJob
from app.kernel.message import shape_of_job
from app.models import ExecutionStatus, JobExecution
from app.redis_client import get_quick_redis
from celeriac import events as ev
from celeriac.buffer import encode_event
from celeriac.events import payload_from_args

logger = logging.getLogger(__name__)

#: `exception_type` of a job that was accepted but could not be queued.
NOT_QUEUED = "NotQueued"


def pending_row(job: ResolvedJob, lock: str | None, published_at: float | None = None) -> JobExecution:
    """The row of an accepted job, whose message goes out right after the commit unless it
    waits for dependencies (a chain's later steps too): those get a publish time when
    they are released (from the publish event)."""
    return JobExecution(**pending_values(job, lock, published_at))


def pending_values(job: ResolvedJob, lock: str | None, published_at: float | None = None) -> dict[str, Any]:
    """`pending_row`'s columns, for a Core insert (app.kernel.row_insert).

    `published_at`: the publish time its message will carry (epoch seconds; default now).
    """
    stamp = published_at if published_at is not None else time.time()
    now = _moment(stamp)
    eta = job.eta
    expires_at = None
    if job.expires_s:
        expires_at = now + timedelta(seconds=job.delay_s + job.expires_s)
    return {
        "id": job.job_id,
        "tenant_id": job.tenant_id,
        "job_definition_id": job.job_definition_id,
        "job_class": job.job_class,
        "queue": job.queue,
        "priority": job.priority,
        "payload": payload_from_args(job.args, job.wire_payload()),
        "status": ExecutionStatus.PENDING.value,
        # 0: any worker event replaces "pending", even from a host whose clock is behind.
        "status_ts": 0.0,
        "attempts": 0,
        "max_attempts": job.max_attempts,
        "eta": eta,
        "expires_at": expires_at,
        "tags": job.tags or None,
        "retry_of": job.retry_of,
        "encrypted": job.encrypted,
        "depends_on": job.depends_on,
        "unique_key": lock,
        "batch_id": job.batch_id,
        "chain_id": job.chain_id,
        "chain_step": job.chain_step,
        "schedule_id": job.schedule_id,
        "message": shape_of_job(job),
        # The time its message carries (celeriac_ts), so never later than the message: if
        # this process dies between the commit and the publish, the reconciler publishes it.
        "published_at": None if job.depends_on else now,
        "due_at": None,
        "concurrency_key": user_key(job.concurrency),
        "created_at": now,
        "updated_at": now,
    }


_last_moment: tuple[float, datetime] = (0.0, datetime.fromtimestamp(0, UTC))


def _moment(stamp: float) -> datetime:
    """`stamp` as a datetime; one object for a batch's rows, which share their stamp."""
    global _last_moment
    last = _last_moment
    if last[0] != stamp:
        last = (stamp, datetime.fromtimestamp(stamp, UTC))
        _last_moment = last
    return last[1]


def begin_write(session: Session, sqlite: bool) -> None:
    """Take SQLite's write lock before reading, so nothing changes between read and write.

    Only when no transaction is open yet (pysqlite opens one at the first write); on
    PostgreSQL the applier locks the rows it reads instead.
    """
    if not sqlite:
        return
    connection: Connection = session.connection()
    raw: Any = connection.connection.dbapi_connection
    if raw is not None and not raw.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def end_job(session: Session, event: dict[str, Any], redis: Any | None) -> bool:
    """Apply a terminal `event` (cancel, fail) to a live job now; commit; announce it.

    Returns whether the job was live (and so was ended by this call). The announcement is
    best effort: if Redis is down the row is right and only the follow-ups wait.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    begin_write(session, sqlite)
    if session.scalar(select(JobExecution.id).where(JobExecution.id == event["id"])) is None:
        session.commit()
        return False  # never a new row from here: the job is gone (purged) or never was
    applier = EventApplier()
    applier.apply(session, [event], lock=not sqlite)
    session.commit()
    ended = event["id"] in applier.changed
    if ended and redis is not None:
        announce(redis, [event])
    return ended


def add_announcement(pipe: Any, event: dict[str, Any]) -> None:
    """Queue `event` for the recorder's stream on a Redis pipeline."""
    pipe.xadd(redis_keys.EVENTS_STREAM, {"e": encode_event(event)})


def announce(redis: Any, events: list[dict[str, Any]]) -> None:
    """Put events on the recorder's stream (it applies them again: a no-op on the row)."""
    try:
        pipe = redis.pipeline(transaction=False)
        for event in events:
            add_announcement(pipe, event)
        pipe.execute()
    except Exception as exc:  # Redis boundary: the rows are right; follow-ups wait
        logger.warning("Could not announce %d job events to the recorder: %s", len(events), exc)


def cancel_event(job_id: str, reason: str) -> dict[str, Any]:
    return ev.cancelled(job_id, reason=reason)


def not_queued_event(job_id: str, reason: str) -> dict[str, Any]:
    """A job accepted but not queued: failed with the reason, never silently gone."""
    event = ev.failed(job_id, None, None, None, None, None)
    event.update(err=reason, exc=NOT_QUEUED)
    return event


def mark_unqueued(session: Session, job_id: str, reason: str, settings: Settings | None = None) -> None:
    """An accepted job whose publish failed: failed with the reason, never silently gone.

    Whether the broker got the message is unknown (a timeout after sending it), so the job
    is also marked cancelled for workers: if its message did arrive, a worker skips it
    instead of running a job whose dispatch answered an error. If Redis is down now, the
    reconciler sets that mark, and announces the failure, once it is back.
    """
    event = not_queued_event(job_id, reason)
    end_job(session, event, None)
    session.expire_all()
    try:
        pipe = get_quick_redis((settings or get_settings()).redis_url).pipeline(transaction=True)
        add_cancel_mark(pipe, job_id)
        add_announcement(pipe, event)
        pipe.execute()
    except Exception as exc:  # Redis boundary: the reconciler marks and announces it later
        logger.warning("Job %s: not marked for workers to skip yet (%s)", job_id, exc)


def void_job(job_id: str, settings: Settings) -> None:
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
