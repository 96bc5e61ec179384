"""Step 2 of the reconciler (app.recording.reconcile): live rows none of whose messages can
still exist, and which unacknowledged messages are Celeriac's to judge at all.

Rows recorded from Celery's task events (app.kernel.attached) are never suspects: their
workers are not Celeriac's (no heartbeat lists what they hold), their messages carry no
publish time, and an event missed while the recorder was down is not a lost job. With
CELERIAC_ATTACH, only messages of queues consumed by workers that write heartbeats are
judged orphans: a project's workers seen only through events hold theirs unacknowledged
(ETA jobs for their whole countdown) with no heartbeat saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.kernel.attached import not_attached
from app.models import ExecutionStatus, JobExecution
from app.recording.broker_view import Broker, Unacked, live_queues

#: Suspects judged per round; a run goes on with more rounds while it finds a full one.
MAX_SUSPECTS = 1000
_LIVE_WAITING = (ExecutionStatus.PENDING.value, ExecutionStatus.RETRYING.value)
_PROCESSING = ExecutionStatus.PROCESSING.value


def find_suspects(
    session: Session, broker: Broker, settings: Settings, in_flight: set[str], now: float
) -> list[JobExecution]:
    """Rows whose message cannot still exist (see the reconciler's docstring), at most MAX_SUSPECTS."""
    grace = timedelta(seconds=settings.reliability.reconcile_grace_s)
    skew = settings.reliability.clock_skew_s
    moment = datetime.fromtimestamp(now, UTC)
    found: list[JobExecution] = []
    started_before = moment - grace
    processing = session.scalars(
        select(JobExecution)
        .where(JobExecution.status == _PROCESSING, JobExecution.updated_at < started_before)
        .where(not_attached())
        .limit(MAX_SUSPECTS)
    )
    found.extend(row for row in processing if row.id not in in_flight)
    oldest_by_queue: dict[str, float | None] = {}
    for status, queue in live_queues(session, _LIVE_WAITING):
        if queue not in oldest_by_queue:
            oldest_by_queue[queue] = broker.oldest_published_at(queue, now)
        oldest = oldest_by_queue[queue]
        if oldest is None:
            continue
        cut = min(moment - grace, datetime.fromtimestamp(oldest - skew, UTC))
        rows = session.scalars(
            select(JobExecution)
            .where(JobExecution.status == status, JobExecution.queue == queue, JobExecution.published_at < cut)
            .where(JobExecution.due_at.is_(None))  # a held job has no message to lose
            .where(not_attached())
            .order_by(JobExecution.published_at)
            .limit(MAX_SUSPECTS)
        )
        found.extend(row for row in rows if row.id not in in_flight)
        if len(found) >= MAX_SUSPECTS:
            break
    return found[:MAX_SUSPECTS]


def own_unacked(entries: Sequence[Unacked], settings: Settings, heartbeat_queues: set[str]) -> list[Unacked]:
    """The unacknowledged messages whose workers tell what they hold: all of them, or with
    CELERIAC_ATTACH those of Celeriac's own queue and of queues that workers writing
    heartbeats consume (Celeriac's, and a project's instrumented with `celeriac.instrument`)."""
    if not settings.attach.enabled:
        return list(entries)
    known = set(settings.attach.queues) | heartbeat_queues
    return [entry for entry in entries if entry.queue in known]
