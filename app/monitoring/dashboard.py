"""What the console's dashboard and performance pages show, read cheaply (U2, U3).

Everything here comes from the per-minute aggregates (`job_stats_minute`), indexed counts
of live executions (through `queue_stats`), the worker registry in Redis and the health
rules of app.monitoring: a dashboard polled every few seconds never scans
`job_executions` and never waits for a Celery broadcast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.errors import ValidationError
from app.kernel import aggregates
from app.models import JobStatsMinute
from app.models.job_stats import BUCKETS
from app.monitoring import health, metrics
from app.monitoring.queue_stats import QueueStats, stats_of_queues
from app.monitoring.stuck import find_stuck
from app.monitoring.workers import ONLINE, WorkerInfo, list_workers

#: Chart windows: name -> (length, bucket size, label format).
WINDOWS: dict[str, tuple[timedelta, timedelta, str]] = {
    "hour": (timedelta(hours=1), timedelta(minutes=1), "%H:%M"),
    "day": (timedelta(days=1), timedelta(minutes=15), "%H:%M"),
}
FINISHED = ("completed", "failed", "cancelled")
_TABLE = JobStatsMinute.__table__


def window_of(name: str | None) -> str:
    """A known chart window name ("hour" when none is given).

    Raises:
        ValidationError: an unknown window.
    """
    name = name or "hour"
    if name not in WINDOWS:
        raise ValidationError(f"window must be one of {', '.join(WINDOWS)}, got {name!r}")
    return name


@dataclass(frozen=True)
class Series:
    """Per-bucket figures of one window, oldest bucket first."""

    labels: list[str]
    starts: list[datetime]
    finished: dict[str, list[int]]
    p95_runtime_ms: list[float]

    def throughput_per_minute(self, bucket: timedelta) -> list[float]:
        minutes = bucket / timedelta(minutes=1)
        return [round(n / minutes, 2) for n in self.finished["completed"]]


def series(
    session: Session,
    tenant_id: str | None,
    window: str,
    now: datetime | None = None,
    job_class: str | None = None,
) -> Series:
    """Completed / failed / cancelled and runtime p95 per bucket of `window` (grouped in SQL by minute).

    Minute rows only: the longest window is a day, and minute rows are kept at least that
    long before they are rolled up (app.config_stats.MIN_HOURLY_AFTER_H).
    """
    length, bucket, fmt = WINDOWS[window]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    step = int(bucket.total_seconds() // 60)
    end = now.replace(second=0, microsecond=0)
    end = end - timedelta(minutes=end.minute % step)
    count = int(length / bucket)
    first = end - bucket * (count - 1)
    starts = [first + bucket * i for i in range(count)]
    sums = [func.sum(_TABLE.c[name]) for name in FINISHED] + [func.sum(_TABLE.c[f"b{n}"]) for n in range(BUCKETS)]
    query = select(_TABLE.c.minute, func.max(_TABLE.c.runtime_max_ms), *sums).where(_TABLE.c.minute >= first)
    if tenant_id is not None:
        query = query.where(_TABLE.c.tenant_id == tenant_id)
    if job_class is not None:
        query = query.where(_TABLE.c.job_class == job_class)
    finished = {name: [0] * count for name in FINISHED}
    histograms = [[0] * BUCKETS for _ in range(count)]
    maxima = [0] * count
    for minute, runtime_max, *values in session.execute(query.group_by(_TABLE.c.minute)):
        minute = minute if minute.tzinfo else minute.replace(tzinfo=UTC)
        index = int((minute - first) / bucket)
        if not 0 <= index < count:
            continue
        for name, value in zip(FINISHED, values[:3], strict=True):
            finished[name][index] += int(value or 0)
        for n, value in enumerate(values[3:]):
            histograms[index][n] += int(value or 0)
        maxima[index] = max(maxima[index], int(runtime_max or 0))
    p95 = [_p95(histograms[i], maxima[i]) for i in range(count)]
    return Series([s.strftime(fmt) for s in starts], starts, finished, p95)


def _p95(buckets: Sequence[int], runtime_max: int) -> float:
    stats = aggregates.WindowStats(0, 0, 0, 0, 0, runtime_max, 0, 0.0, tuple(buckets))
    return stats.runtime_percentile(0.95) or 0.0


@dataclass(frozen=True)
class FailureCounts:
    last_hour: int
    last_day: int


def failure_counts(session: Session, tenant_id: str | None, now: datetime | None = None) -> FailureCounts:
    """Failed executions in the last hour and day, from the aggregates."""
    now = now or datetime.now(UTC)
    scope = [] if tenant_id is None else [_TABLE.c.tenant_id == tenant_id]
    conn = session.connection()
    hour = aggregates.window(conn, (now - timedelta(hours=1)).replace(second=0, microsecond=0), *scope)
    day = aggregates.window(conn, (now - timedelta(days=1)).replace(second=0, microsecond=0), *scope)
    return FailureCounts(hour.failed, day.failed)


def all_queue_stats(session: Session, tenant_id: str | None, redis_client: Any) -> list[QueueStats]:
    """Stats of every queue the tenant used recently (grouped queries, as GET /api/admin/queue/stats)."""
    return stats_of_queues(session, metrics.known_queues(session, tenant_id), tenant_id, redis_client)


@dataclass(frozen=True)
class WorkerSummary:
    online: int
    offline: int
    busy_slots: int
    pool_slots: int
    workers: list[WorkerInfo] = field(default_factory=list)


def worker_summary(redis_client: Any, settings: Settings) -> WorkerSummary:
    """Online / offline counts and pool use, from heartbeats in Redis (no broadcast)."""
    found = list_workers(redis_client, settings.monitoring)
    online = [w for w in found if w.status == ONLINE]
    return WorkerSummary(
        online=len(online),
        offline=len(found) - len(online),
        busy_slots=sum(w.heartbeat.active for w in online),
        pool_slots=sum(w.heartbeat.pool_size for w in online),
        workers=found,
    )


def health_report(
    session: Session,
    redis_client: Any,
    settings: Settings,
    tenant_id: str | None,
    queues: list[QueueStats],
    workers: list[WorkerInfo],
) -> health.Report:
    """The same judgement as GET /api/admin/queue/health, from figures already read."""
    limits = settings.health
    since = (datetime.now(UTC) - timedelta(seconds=limits.recent_window_s)).replace(second=0, microsecond=0)
    scope = [] if tenant_id is None else [_TABLE.c.tenant_id == tenant_id]
    return health.assess(
        [q.as_dict() for q in queues],
        workers,
        redis_client.hgetall(redis_keys.RECORDER_STATS) or {},
        bool(redis_client.exists(redis_keys.RECORDER_HEARTBEAT)),
        len(find_stuck(session, redis_client, settings, tenant_id)),
        limits,
        aggregates.windows(session.connection(), since, "queue", *scope),
    )
