"""Celeriac's scheduled set: jobs whose delay or retry backoff is too long for a broker ETA.

Redis delivers an ETA message at once and the worker holds it, unacknowledged, until it is
due; past the visibility timeout the broker hands it out again and it runs twice
(CELERY-NOTES.md). So a wait longer than `CELERIAC_SCHEDULED_AFTER_S` is kept here instead:

- the SQL row is the record: `due_at` is set while the job waits (status `pending`, or
  `retrying` for a held retry) and its `published_at` is NULL (no message exists, so the
  reconciler never takes it for a lost one); `due_at` is NULL again once it is released;
- the Redis sorted set `celeriac:scheduled` (job id -> due epoch) is the index the releaser
  (app.recording.scheduled, in the recorder) reads every half second. It is written only
  after the row is committed, and it is rebuilt from the rows after a Redis data loss.

Jobs the hub releases later (chain steps after the first, batch and chain callbacks,
dependants) count their delay from their release: the outbox's drainer holds them here then
(`hold_released`, app.composition.held_release), with the payload they were released with.

Releasing is exactly once because the release is a conditional UPDATE of the row
(`release_row`: due_at set, status live): the Lua claim (ZRANGEBYSCORE + ZREM) only keeps
two releasers from doing the same work. A set entry whose row says otherwise is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import and_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import redis_keys
from app.config import Settings
from app.errors import BackendUnavailable, Conflict
from app.kernel.concurrency_claims import user_key
from app.kernel.dispatching import ResolvedJob
from app.kernel.lookup import get_job
from app.kernel.message import shape_of_job
from app.kernel.writer import pending_row
from app.models import ExecutionStatus, JobExecution
from celeriac.events import payload_from_args

#: Statuses in which a job can wait in the set.
WAITING = (ExecutionStatus.PENDING.value, ExecutionStatus.RETRYING.value)

#: Take the due members, at most ARGV[2], and remove them, in one step.
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
"""


def holds(delay_s: float | None, settings: Settings) -> bool:
    """Whether a wait of `delay_s` seconds goes to the scheduled set (not a broker ETA)."""
    return bool(delay_s) and float(delay_s or 0) > settings.scheduled_after_s


class ScheduledSet:
    """The sorted set's commands (every one of them lives here)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)

    def add(self, due: Mapping[str, float]) -> None:
        """Add or move jobs: job id -> due epoch seconds."""
        if due:
            self.redis.zadd(redis_keys.SCHEDULED, dict(due))

    def remove(self, job_id: str) -> None:
        self.redis.zrem(redis_keys.SCHEDULED, job_id)

    def claim_due(self, now: float, limit: int) -> list[str]:
        """Take (remove and return) up to `limit` jobs due at `now`, soonest first."""
        taken = self._claim(keys=[redis_keys.SCHEDULED], args=[now, limit])
        return [item.decode() if isinstance(item, bytes) else str(item) for item in taken]

    def scores(self, job_ids: Sequence[str]) -> list[float | None]:
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.zscore(redis_keys.SCHEDULED, job_id)
        return [None if score is None else float(score) for score in pipe.execute()]

    def entries(self, limit: int) -> list[tuple[str, float]]:
        """The soonest `limit` entries (id, due epoch)."""
        raw = self.redis.zrange(redis_keys.SCHEDULED, 0, limit - 1, withscores=True)
        return [(k.decode() if isinstance(k, bytes) else str(k), float(v)) for k, v in raw]

    def count(self) -> int:
        return int(self.redis.zcard(redis_keys.SCHEDULED))


def hold_row(row: JobExecution, due: datetime, expires_s: float | None = None) -> None:
    """Make a new row wait in the set until `due` (before its commit); `expires_s` counts from `due`."""
    row.due_at = due
    row.eta = due
    row.published_at = None  # no message: the reconciler must not look for one
    if expires_s:
        row.expires_at = due + timedelta(seconds=expires_s)


def hold_values(values: dict[str, Any], due: datetime, expires_s: float | None = None) -> None:
    """`hold_row` for a row's values before a Core insert (app.kernel.writer.pending_values)."""
    values.update(due_at=due, eta=due, published_at=None)
    if expires_s:
        values["expires_at"] = due + timedelta(seconds=expires_s)


def hold_released(session: Session, job: ResolvedJob) -> datetime | None:
    """Make a job the hub just released (a chain step, a callback, a dependant) wait in the set
    for its delay, counted from now; commit. Returns its due time, or None when there is
    nothing to hold any more.

    The row gets what the releaser rebuilds the message from (app.kernel.message): the payload
    as released (with a chain step's `previous_result`; sealed when encrypted) and the shape.
    A waiting row is updated only while it was never published nor held; a callback has no row
    until now, so one is added. Called again for the same job (its drainer died before it
    confirmed), a row already held keeps its due time, and one released, cancelled or
    finished since is left alone: the job waits once, and runs once.
    """
    due = datetime.now(UTC) + timedelta(seconds=job.delay_s)
    values: dict[str, Any] = {
        "payload": payload_from_args(job.args, job.wire_payload()),
        "message": shape_of_job(job),
        "due_at": due,
        "eta": due,
        "published_at": None,
        "expires_at": due + timedelta(seconds=job.expires_s) if job.expires_s else None,
        "concurrency_key": user_key(job.concurrency),
    }
    result = session.execute(
        update(JobExecution)
        .where(
            JobExecution.id == job.job_id,
            JobExecution.status == ExecutionStatus.PENDING.value,
            JobExecution.due_at.is_(None),
            JobExecution.published_at.is_(None),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if getattr(result, "rowcount", 0):
        return due
    held = session.execute(
        select(JobExecution.due_at, JobExecution.status).where(JobExecution.id == job.job_id)
    ).first()
    if held is None:
        row = pending_row(job, None)
        hold_row(row, due, job.expires_s)
        row.concurrency_key = values["concurrency_key"]
        session.add(row)
        try:
            session.commit()
            return due
        except IntegrityError:  # another drainer added it first: as if found held
            session.rollback()
            held = session.execute(
                select(JobExecution.due_at, JobExecution.status).where(JobExecution.id == job.job_id)
            ).first()
    if held is not None and held.due_at is not None and held.status in WAITING:
        found: datetime = held.due_at
        return found  # held already: the set may lack it, its due time stays
    return None


class HoldingPublisher:
    """Stands in for the publisher of a dispatch whose delay is held: adds it to the set,
    after the row's commit (so a failure here is handled like a failed publish)."""

    def __init__(self, redis: Any, due: datetime) -> None:
        self.redis = redis
        self.due = due

    def publish(self, job: Any, producer: Any = None) -> None:
        ScheduledSet(self.redis).add({job.job_id: self.due.timestamp()})


def release_row(session: Session, job_id: str, now: datetime, slack_s: float) -> bool:
    """Mark the job released (due_at NULL, published now) if it still waits and is due; commit.

    The one place a held job leaves the set: of two releasers, or a releaser and a cancel,
    only one sees its UPDATE match. `published_at` is set before the publish, so it is never
    later than the message (the reconciler republishes the job if this process dies now).
    """
    result = session.execute(
        update(JobExecution)
        .where(
            and_(
                JobExecution.id == job_id,
                JobExecution.due_at.is_not(None),
                JobExecution.due_at <= now + timedelta(seconds=slack_s),
                JobExecution.status.in_(WAITING),
            )
        )
        .values(due_at=None, published_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def unrelease_row(session: Session, job_id: str, due: datetime) -> bool:
    """Undo `release_row` after a publish failed: the job waits again, due at `due`; commit."""
    result = session.execute(
        update(JobExecution)
        .where(JobExecution.id == job_id, JobExecution.due_at.is_(None), JobExecution.status.in_(WAITING))
        .values(due_at=due, published_at=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(result, "rowcount", 0))


def run_now(session: Session, job_id: str, tenant_id: str | None, redis: Any) -> JobExecution:
    """Release a job waiting in the scheduled set at once (the releaser publishes it within
    about a second). Its due time becomes now, in SQL first, then in the set.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not waiting in the scheduled set.
        BackendUnavailable: Redis refused; the job is due now in SQL and is released once
            the reconciler has put it back in the set.
    """
    row = get_job(session, job_id, tenant_id)
    now = datetime.now(UTC)
    result = session.execute(
        update(JobExecution)
        .where(JobExecution.id == job_id, JobExecution.due_at.is_not(None), JobExecution.status.in_(WAITING))
        .values(due_at=now, eta=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if not getattr(result, "rowcount", 0):
        session.refresh(row)
        raise Conflict(f"job {job_id} is {row.status} and not waiting for a due time; only a held job can run now")
    try:
        ScheduledSet(redis).add({job_id: now.timestamp()})
    except RedisError as exc:
        raise BackendUnavailable("Redis is unavailable; the job is due now and runs once Redis is back") from exc
    # The answer is what was committed, not a read after it (the releaser may be done already).
    set_committed_value(row, "due_at", now)
    return row


def unschedule(redis: Any, job_id: str) -> None:
    """Drop a cancelled job's entry (best effort: the releaser drops it anyway, its row is not live)."""
    try:
        ScheduledSet(redis).remove(job_id)
    except RedisError:
        pass
