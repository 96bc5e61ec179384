"""The figures of `GET /metrics` (Prometheus) and `GET /api/admin/queue/metrics` (JSON), M5.

Everything comes from the per-minute aggregates, indexed counts of live executions, the
broker's list lengths and the recorder's stats hash: nothing scans `job_executions`.
Finished-job counters and the runtime histogram are totals over the aggregates kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.models import LIVE_STATUSES, ExecutionStatus, JobExecution, JobStatsMinute
from app.models.job_stats import BUCKETS, RUNTIME_BOUNDS_MS, SUMMED_COLUMNS
from app.monitoring.planner import dialect_of, rare
from app.monitoring.queue_stats import broker_depths

#: Kinds of recovery counted (app.recording.reconcile, app.recording.worker_loss; R1).
RECOVERIES = (
    "orphans_requeued",
    "orphans_failed",
    "recovered_from_result_backend",
    "republished",
    "skip_marks_set",
    "unrebuildable",
    "reheld",
    "voided",
    "redis_data_losses",
    "recovered_in_worker",
    "worker_losses_requeued",
    "worker_losses_failed",
)

#: Queues always reported, besides those that ran jobs in the last day.
DEFAULT_QUEUES = ("high", "default", "low")


@dataclass
class Snapshot:
    """One reading of every figure, shared by the Prometheus and JSON outputs."""

    finished: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (queue, class, status) -> total
    retried: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, class) -> attempts retried
    runtimes: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)  # class -> buckets, count, sum s
    waits: dict[str, tuple[list[int], int, float]] = field(default_factory=dict)  # queue -> buckets, count, sum s
    live: dict[tuple[str, str], int] = field(default_factory=dict)  # (queue, status) -> jobs now
    depth: dict[str, int] = field(default_factory=dict)
    oldest_pending_s: dict[str, float] = field(default_factory=dict)
    recorder: dict[str, float] = field(default_factory=dict)
    #: What the reconciler and workers' main processes recovered, by kind (R1).
    recoveries: dict[str, float] = field(default_factory=dict)
    workers_online: int | None = None


def _scoped(query: Any, column: Any, tenant_id: str | None) -> Any:
    return query if tenant_id is None else query.where(column == tenant_id)


def known_queues(session: Session, tenant_id: str | None, now: datetime | None = None) -> list[str]:
    """The tenant's queues: live jobs now or finished ones in the last day, plus the standard three."""
    since = (now or datetime.now(UTC)) - timedelta(days=1)
    table = JobStatsMinute.__table__
    recent = _scoped(select(table.c.queue).where(table.c.minute >= since), table.c.tenant_id, tenant_id)
    live_only = rare(JobExecution.status.in_([s.value for s in LIVE_STATUSES]), dialect_of(session))
    live = _scoped(
        select(JobExecution.queue).where(live_only),
        JobExecution.tenant_id,
        tenant_id,
    )
    names = set(session.scalars(recent.distinct())) | set(session.scalars(live.distinct()))
    return sorted(names | set(DEFAULT_QUEUES))


def _add_histogram(
    into: dict[str, tuple[list[int], int, float]], label: str, named: dict[str, int], prefix: str, name: str
) -> None:
    buckets, count, total = into.get(label, ([0] * BUCKETS, 0, 0.0))
    into[label] = (
        [b + named[f"{prefix}{n}"] for n, b in enumerate(buckets)],
        count + named[f"{name}_count"],
        total + named[f"{name}_sum_ms"] / 1000,
    )


def take(session: Session, redis_client: Any, tenant_id: str | None, now: datetime | None = None) -> Snapshot:
    """Read the figures `tenant_id` may see (None: every tenant)."""
    now = now or datetime.now(UTC)
    snap = Snapshot()
    table = JobStatsMinute.__table__
    # The model's own list, so a counter added there is summed here too (the memory columns
    # come along unused: /metrics reports no memory figure).
    sums = [func.sum(table.c[name]) for name in SUMMED_COLUMNS]
    rows = session.execute(
        _scoped(select(table.c.queue, table.c.job_class, *sums), table.c.tenant_id, tenant_id).group_by(
            table.c.queue, table.c.job_class
        )
    ).all()
    for queue, job_class, *values in rows:
        named = dict(zip(SUMMED_COLUMNS, (int(v or 0) for v in values), strict=True))
        for status in ("completed", "failed", "cancelled"):
            snap.finished[(queue, job_class, status)] = named[status]
        snap.retried[(queue, job_class)] = named["retried"]
        _add_histogram(snap.runtimes, job_class, named, "b", "runtime")
        _add_histogram(snap.waits, queue, named, "w", "wait")
    live = [s.value for s in LIVE_STATUSES]
    counted = session.execute(
        _scoped(
            select(JobExecution.queue, JobExecution.status, func.count()).where(
                rare(JobExecution.status.in_(live), dialect_of(session))
            ),
            JobExecution.tenant_id,
            tenant_id,
        ).group_by(JobExecution.queue, JobExecution.status)
    ).all()
    snap.live = {(queue, status): int(n) for queue, status, n in counted}
    queues = known_queues(session, tenant_id, now)
    snap.depth = broker_depths(redis_client, queues)
    ready = or_(JobExecution.eta.is_(None), JobExecution.eta <= now)
    oldest_rows = session.execute(
        _scoped(
            select(JobExecution.queue, func.min(JobExecution.created_at)).where(
                JobExecution.queue.in_(queues),
                rare(JobExecution.status == ExecutionStatus.PENDING.value, dialect_of(session)),
                ready,
            ),
            JobExecution.tenant_id,
            tenant_id,
        ).group_by(JobExecution.queue)
    ).all()
    for queue, oldest in oldest_rows:
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            snap.oldest_pending_s[queue] = max(0.0, (now - oldest).total_seconds())
    stats = redis_client.hgetall(redis_keys.RECORDER_STATS) or {}
    for key in ("lag_p50_ms", "lag_p99_ms", "backlog", "events_total", "dead_total"):
        raw = stats.get(key.encode())
        if raw is not None:
            snap.recorder[key] = float(raw)
    snap.recorder["alive"] = 1.0 if redis_client.exists(redis_keys.RECORDER_HEARTBEAT) else 0.0
    for key, raw in (redis_client.hgetall(redis_keys.RECOVERY_STATS) or {}).items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        if name in RECOVERIES:
            snap.recoveries[name] = float(raw)
    return snap


def _histogram(name: str, help_text: str, label: str, series: dict[str, tuple[list[int], int, float]]) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=[label])
    bounds = [f"{b / 1000:g}" for b in RUNTIME_BOUNDS_MS] + ["+Inf"]
    for value, (buckets, _count, total) in sorted(series.items()):
        cumulative, running = [], 0
        for bound, count in zip(bounds, buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        family.add_metric([value], cumulative, total)
    return family


def families(snap: Snapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families."""
    finished = CounterMetricFamily(
        "celeriac_jobs_finished",
        "Executions that finished, by queue, class and status",
        labels=["queue", "job_class", "status"],
    )
    for (queue, job_class, status), n in sorted(snap.finished.items()):
        finished.add_metric([queue, job_class, status], n)
    yield finished
    retried = CounterMetricFamily(
        "celeriac_jobs_retried",
        "Attempts that ended in a retry, by queue and class",
        labels=["queue", "job_class"],
    )
    for (queue, job_class), n in sorted(snap.retried.items()):
        retried.add_metric([queue, job_class], n)
    yield retried
    yield _histogram("celeriac_job_runtime_seconds", "Runtime of completed executions", "job_class", snap.runtimes)
    yield _histogram(
        "celeriac_job_wait_seconds",
        "Queue wait of executions that ran (first start minus created or eta), by finish",
        "queue",
        snap.waits,
    )
    live = GaugeMetricFamily(
        "celeriac_jobs_live", "Executions pending, retrying or processing now", labels=["queue", "status"]
    )
    for (queue, status), n in sorted(snap.live.items()):
        live.add_metric([queue, status], n)
    yield live
    depth = GaugeMetricFamily("celeriac_queue_depth", "Messages in the broker's lists of the queue", labels=["queue"])
    oldest = GaugeMetricFamily(
        "celeriac_queue_oldest_pending_seconds", "Age of the oldest ready pending job", labels=["queue"]
    )
    for queue, n in sorted(snap.depth.items()):
        depth.add_metric([queue], n)
        if queue in snap.oldest_pending_s:
            oldest.add_metric([queue], snap.oldest_pending_s[queue])
    yield depth
    yield oldest
    if snap.workers_online is not None:
        yield GaugeMetricFamily("celeriac_workers_online", "Workers with a fresh heartbeat", value=snap.workers_online)
    for key, help_text in (
        ("lag_p50_ms", "Recorder lag p50 (event to SQL), ms"),
        ("lag_p99_ms", "Recorder lag p99 (event to SQL), ms"),
        ("backlog", "Events waiting for the recorder"),
        ("alive", "1 while a recorder heartbeat is fresh"),
    ):
        if key in snap.recorder:
            yield GaugeMetricFamily(f"celeriac_recorder_{key}", help_text, value=snap.recorder[key])
    recovered = CounterMetricFamily(
        "celeriac_recoveries", "Jobs the reconciler or a worker's main process recovered, by kind", labels=["kind"]
    )
    for kind in RECOVERIES:
        recovered.add_metric([kind], snap.recoveries.get(kind, 0.0))
    yield recovered


def as_json(snap: Snapshot) -> dict[str, Any]:
    """The same figures for `GET /api/admin/queue/metrics`."""
    return {
        "counters": {
            "jobs_finished": [
                {"queue": q, "job_class": c, "status": s, "value": n} for (q, c, s), n in sorted(snap.finished.items())
            ],
            "jobs_retried": [{"queue": q, "job_class": c, "value": n} for (q, c), n in sorted(snap.retried.items())],
        },
        "gauges": {
            "jobs_live": [{"queue": q, "status": s, "value": n} for (q, s), n in sorted(snap.live.items())],
            "queue_depth": [{"queue": q, "value": n} for q, n in sorted(snap.depth.items())],
            "queue_oldest_pending_seconds": [
                {"queue": q, "value": round(v, 3)} for q, v in sorted(snap.oldest_pending_s.items())
            ],
            "recorder": snap.recorder,
            "recoveries": {kind: snap.recoveries.get(kind, 0.0) for kind in RECOVERIES},
            "workers_online": snap.workers_online,
        },
    }
