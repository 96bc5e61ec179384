"""Releasing held jobs when due, and rebuilding the scheduled set from SQL (app.kernel.scheduled).

The recorder (which always runs) calls `Releaser.maybe_release` from its loop: every
`TICK_S` it claims the due entries (one Lua call) and, for each, marks the row released
(a conditional UPDATE: the one exactly-once step), then publishes its message rebuilt from
the row (app.kernel.message.republish). What happens if this process dies at each step:

1. after the claim, before the UPDATE: the entries are gone from Redis but the rows still
   have `due_at`; the reconciler's `rebuild` puts them back (within its interval) and they
   are released then;
2. after the UPDATE, before the publish: the row is `pending` / `retrying` with a publish
   time and no message anywhere: the reconciler's lost-message rule publishes it, once;
3. after the publish: done; a stale entry put back by `rebuild` meanwhile finds the row
   released and is dropped.

A publish that fails undoes the UPDATE and puts the entry back, due at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select, tuple_
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.config import Settings
from app.kernel import message
from app.kernel.scheduled import WAITING, ScheduledSet, release_row, unrelease_row
from app.models import JobExecution

logger = logging.getLogger(__name__)

#: Seconds between two looks at the set: a job is released within about this of its due time.
TICK_S = 0.5
#: Jobs claimed per Lua call; a tick claims again while it took a full batch (up to TICK_BUDGET_S).
CLAIM_BATCH = 200
TICK_BUDGET_S = 5.0
#: Rows the rebuild compares with the set per page.
REBUILD_PAGE = 1000


class Releaser:
    """Publishes held jobs when due; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        redis: Any,
        session_factory: Callable[[], Any],
        *,
        publish: Callable[[JobExecution], None] = message.republish,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.set = ScheduledSet(redis)
        self.session_factory = session_factory
        self.publish = publish
        self.clock = clock
        self._last = 0.0
        self.rebuilder = Rebuilder(redis)

    def after_write(self, events: list[dict[str, Any]]) -> None:
        """Add the retries held by `events` (app.kernel.held_retry) once their rows are committed.

        Best effort: if Redis fails here the rebuild puts them back from their rows."""
        held = {e["id"]: float(e["due"]) for e in events if e.get("t") == "hold" and e.get("due") is not None}
        try:
            self.set.add(held)
        except RedisError as exc:
            logger.warning("Scheduled set: %d held retries not added yet (%s)", len(held), exc)

    def after_reconcile(self, report: Any) -> int:
        """Put back the held jobs the set lacks, after each reconciler run (under its lock):
        a page each run, every held row after Redis lost its data."""
        with self.session_factory() as session:
            return self.rebuilder.run(session, full=bool(getattr(report, "redis_data_lost", False)))

    def maybe_release(self) -> int:
        """Release what is due, at most every TICK_S; an outage only delays it (logged)."""
        now = time.monotonic()
        if now - self._last < TICK_S:
            return 0
        self._last = now
        try:
            return self.release_due()
        except (SQLAlchemyError, RedisError) as exc:
            logger.warning("Scheduled set: release skipped, a backend is unavailable (%s)", exc)
        except Exception:  # a bug must not stop the recorder
            logger.exception("Scheduled set: release failed")
        return 0

    def release_due(self) -> int:
        """Claim and release every due job now; returns how many were published."""
        released = 0
        deadline = time.monotonic() + TICK_BUDGET_S
        while True:
            now = self.clock()
            claimed = self.set.claim_due(now, CLAIM_BATCH)
            for job_id in claimed:
                released += self._release(job_id, now)
            if len(claimed) < CLAIM_BATCH or time.monotonic() > deadline:
                return released

    def _release(self, job_id: str, now: float) -> bool:
        moment = datetime.fromtimestamp(now, UTC)
        with self.session_factory() as session:
            row = session.get(JobExecution, job_id)
            if row is None:
                return False  # purged, or a dispatch whose row never landed
            due = row.due_at
            if not release_row(session, job_id, moment, self.settings.reliability.clock_skew_s):
                session.refresh(row)
                if row.due_at is not None and row.status in WAITING:
                    self.set.add({job_id: row.due_at.timestamp()})  # SQL says later: wait for that
                return False
            try:
                self.publish(row)
            except Exception as exc:  # broker boundary: wait again, due at once
                logger.warning("Job %s: not released yet, publish failed (%s)", job_id, exc)
                if unrelease_row(session, job_id, due or moment):
                    self.set.add({job_id: now})
                return False
        return True


def rebuild(session: Session, redis: Any, *, after: tuple[datetime, str] | None = None) -> tuple[int, Any]:
    """Put back in the set the held jobs it lacks (Redis lost them, or a releaser died).

    Compares one page of rows that wait (due_at set, status live) with the set: the soonest
    page when `after` is None, else the page after that (due_at, id). Returns (added, the
    key to continue from, or None at the end). Re-adding an entry that a releaser is busy
    with is harmless: its release is conditional on the row.
    """
    query = select(JobExecution.id, JobExecution.due_at).where(
        JobExecution.due_at.is_not(None), JobExecution.status.in_(WAITING)
    )
    if after is not None:
        query = query.where(tuple_(JobExecution.due_at, JobExecution.id) > tuple_(after[0], after[1]))
    rows = session.execute(query.order_by(JobExecution.due_at, JobExecution.id).limit(REBUILD_PAGE)).all()
    if not rows:
        return 0, None
    scheduled = ScheduledSet(redis)
    scores = scheduled.scores([job_id for job_id, _due in rows])
    missing = {job: due.timestamp() for (job, due), score in zip(rows, scores, strict=True) if score is None and due}
    if missing:
        scheduled.add(missing)
        logger.warning("Scheduled set: %d held jobs put back from SQL (Redis had lost them)", len(missing))
    last = rows[-1]
    return len(missing), ((last[1], last[0]) if len(rows) == REBUILD_PAGE else None)


class Rebuilder:
    """Each reconciler run: the soonest page, then the next page of a sweep over all held rows
    (so a job due in a month is checked long before it is due); everything after a data loss."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._cursor: tuple[datetime, str] | None = None

    def run(self, session: Session, full: bool = False, budget_s: float = 10.0) -> int:
        added, more = rebuild(session, self.redis)
        deadline = time.monotonic() + budget_s
        cursor = more if full else self._cursor or more
        while cursor is not None:
            found, cursor = rebuild(session, self.redis, after=cursor)
            added += found
            if not full or time.monotonic() > deadline:
                break
        self._cursor = cursor
        return added
