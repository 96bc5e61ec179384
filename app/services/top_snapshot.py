"""One reading of everything `flask queue top` shows: queues, workers, running jobs.

Read the way the console's pages read them (queue statistics, the heartbeat registry, the
paused-queue registry, the per-minute aggregates, the recorder's progress), in a handful of
grouped queries: a view refreshed every second never scans `job_executions` and never waits
for a Celery broadcast. Nothing here draws anything (ops_ui/cli_top.py does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.control import pauses
from app.control.queues import configured_queues
from app.kernel import aggregates
from app.models import JobStatsMinute
from app.monitoring.metrics import known_queues
from app.monitoring.queue_stats import QueueStats, stats_of_queues
from app.monitoring.workers import ONLINE, Heartbeat, WorkerInfo, list_workers
from app.services.progress import RunningJob, running_progress

#: Completed and failed per minute are averaged over this many recent minutes: long enough
#: not to jump with every job, short enough to show a burst of failures at once.
RATE_WINDOW = timedelta(minutes=5)
#: Most running jobs listed (the count in the queue rows is exact).
RUNNING_LISTED = 50


@dataclass(frozen=True)
class QueueLine:
    """A queue as top shows it."""

    name: str
    pending: int
    delayed: int
    running: int
    done_per_minute: float
    failed_per_minute: float
    paused: bool
    #: Online workers consuming the queue.
    consumers: int


@dataclass(frozen=True)
class TopSnapshot:
    """Queues by name, workers online first, running jobs longest-running first."""

    #: Epoch seconds of the reading (worker heartbeat ages are relative to it).
    taken_at: float
    queues: tuple[QueueLine, ...]
    workers: tuple[WorkerInfo, ...]
    running: tuple[RunningJob, ...]

    @property
    def running_total(self) -> int:
        return sum(line.running for line in self.queues)


def take_snapshot(
    session: Session,
    redis_client: Any,
    settings: Settings,
    tenant_id: str | None = None,
    now: float | None = None,
) -> TopSnapshot:
    """What top shows now, as `tenant_id` sees it (None: every tenant)."""
    taken_at = time.time() if now is None else now
    moment = datetime.fromtimestamp(taken_at, UTC)
    names = sorted(set(known_queues(session, tenant_id, moment)) | configured_queues(redis_client, settings))
    stats = {found.queue: found for found in stats_of_queues(session, names, tenant_id, redis_client, moment)}
    since = (moment - RATE_WINDOW).replace(second=0, microsecond=0)
    scope = [] if tenant_id is None else [JobStatsMinute.tenant_id == tenant_id]
    recent = aggregates.windows(session.connection(), since, "queue", *scope)
    minutes = max((moment - since) / timedelta(minutes=1), 1.0)
    paused = pauses.paused_queues(redis_client)
    workers = list_workers(redis_client, settings.monitoring, taken_at)
    online = [w.heartbeat for w in workers if w.status == ONLINE]
    queues = tuple(
        _line(name, stats.get(name), recent.get(name), minutes, name in paused, online)
        for name in names
        if name in stats or name in paused or any(name in beat.queues for beat in online)
    )
    return TopSnapshot(
        taken_at=taken_at,
        queues=queues,
        workers=tuple(sorted(workers, key=lambda w: (w.status != ONLINE, w.heartbeat.hostname))),
        running=tuple(running_progress(session, tenant_id, limit=RUNNING_LISTED)),
    )


def _line(
    name: str,
    stats: QueueStats | None,
    recent: aggregates.WindowStats | None,
    minutes: float,
    paused: bool,
    online: list[Heartbeat],
) -> QueueLine:
    return QueueLine(
        name=name,
        pending=stats.pending if stats else 0,
        delayed=stats.delayed if stats else 0,
        running=stats.processing if stats else 0,
        done_per_minute=round(recent.completed / minutes, 1) if recent else 0.0,
        failed_per_minute=round(recent.failed / minutes, 1) if recent else 0.0,
        paused=paused,
        consumers=sum(1 for beat in online if name in beat.queues),
    )
