"""The figures of `GET /metrics` (Prometheus) and `GET /api/admin/queue/metrics` (JSON), M5.

Everything comes from the per-minute aggregates, indexed counts of live executions, the
broker's list lengths and the recorder's stats hash: nothing scans `job_executions`.
Finished-job counters and the runtime and wait histograms are the running totals
(`job_stats_total`) the recorder adds to with the aggregates: totals since install.
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
from app.models import LIVE_STATUSES, ExecutionStatus, JobExecution, JobStatsTotal
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


#: (buckets, count, sum in seconds) of one histogram series.
Histogram = tuple[list[int], int, float]
#: (tenant, queue, job class): the labels of the runtime and wait histograms.
SeriesKey = tuple[str, str, str]


@dataclass
class Snapshot:
    """One reading of every figure, shared by the Prometheus and JSON outputs.

    Figures read from SQL are per tenant (the first item of each key); the broker's queue
    depth, the recorder, the workers and the recoveries are shared by every tenant.
    """

    finished: dict[tuple[str, str, str, str], int] = field(default_factory=dict)  # (tenant, queue, class, status)
    retried: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (tenant, queue, class) -> retried
    runtimes: dict[SeriesKey, Histogram] = field(default_factory=dict)  # (tenant, queue, class)
    waits: dict[SeriesKey, Histogram] = field(default_factory=dict)
    live: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (tenant, queue, status) -> jobs now
    depth: dict[str, int] = field(default_factory=dict)  # queue -> messages in the broker (every tenant's)
    oldest_pending_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (tenant, queue)
    recorder: dict[str, float] = field(default_factory=dict)
    #: What the reconciler and workers' main processes recovered, by kind (R1).
    recoveries: dict[str, float] = field(default_factory=dict)
    workers_online: int | None = None


def _scoped(query: Any, column: Any, tenant_id: str | None) -> Any:
    return query if tenant_id is None else query.where(column == tenant_id)


def known_queues(session: Session, tenant_id: str | None, now: datetime | None = None) -> list[str]:
    """The tenant's queues: live jobs now or finished ones in the last day, plus the standard three."""
    since = (now or datetime.now(UTC)) - timedelta(days=1)
    # The running totals note each series' latest minute: one row per (tenant, queue, class),
    # where a DISTINCT over a day of minute rows grew with traffic (88 ms at 300 series).
    table = JobStatsTotal.__table__
    recent = _scoped(select(table.c.queue).where(table.c.last_minute >= since), table.c.tenant_id, tenant_id)
    live_only = rare(JobExecution.status.in_([s.value for s in LIVE_STATUSES]), dialect_of(session))
    live = _scoped(
        select(JobExecution.queue).where(live_only),
        JobExecution.tenant_id,
        tenant_id,
    )
    names = set(session.scalars(recent.distinct())) | set(session.scalars(live.distinct()))
    return sorted(names | set(DEFAULT_QUEUES))


def _add_histogram(
    into: dict[SeriesKey, Histogram], key: SeriesKey, named: dict[str, int], prefix: str, name: str
) -> None:
    buckets, count, total = into.get(key, ([0] * BUCKETS, 0, 0.0))
    into[key] = (
        [b + named[f"{prefix}{n}"] for n, b in enumerate(buckets)],
        count + named[f"{name}_count"],
        total + named[f"{name}_sum_ms"] / 1000,
    )


def take(session: Session, redis_client: Any, tenant_id: str | None, now: datetime | None = None) -> Snapshot:
    """Read the figures `tenant_id` may see (None: every tenant)."""
    now = now or datetime.now(UTC)
    snap = Snapshot()
    # Running totals (one row per tenant, queue and class, whatever the install's age; never
    # decreased by rollup or retention, so no counter goes down). The model's own list, so a
    # counter added there is read here too (memory comes along unused: /metrics has none).
    table = JobStatsTotal.__table__
    sums = [func.sum(table.c[name]) for name in SUMMED_COLUMNS]
    rows = session.execute(
        _scoped(
            select(table.c.tenant_id, table.c.queue, table.c.job_class, *sums), table.c.tenant_id, tenant_id
        ).group_by(table.c.tenant_id, table.c.queue, table.c.job_class)
    ).all()
    for tenant, queue, job_class, *values in rows:
        named = dict(zip(SUMMED_COLUMNS, (int(v or 0) for v in values), strict=True))
        for status in ("completed", "failed", "cancelled"):
            snap.finished[(tenant, queue, job_class, status)] = named[status]
        snap.retried[(tenant, queue, job_class)] = named["retried"]
        _add_histogram(snap.runtimes, (tenant, queue, job_class), named, "b", "runtime")
        _add_histogram(snap.waits, (tenant, queue, job_class), named, "w", "wait")
    live = [s.value for s in LIVE_STATUSES]
    counted = session.execute(
        _scoped(
            select(JobExecution.tenant_id, JobExecution.queue, JobExecution.status, func.count()).where(
                rare(JobExecution.status.in_(live), dialect_of(session))
            ),
            JobExecution.tenant_id,
            tenant_id,
        ).group_by(JobExecution.tenant_id, JobExecution.queue, JobExecution.status)
    ).all()
    snap.live = {(tenant, queue, status): int(n) for tenant, queue, status, n in counted}
    queues = known_queues(session, tenant_id, now)
    snap.depth = broker_depths(redis_client, queues)
    ready = or_(JobExecution.eta.is_(None), JobExecution.eta <= now)
    oldest_rows = session.execute(
        _scoped(
            select(JobExecution.tenant_id, JobExecution.queue, func.min(JobExecution.created_at)).where(
                JobExecution.queue.in_(queues),
                rare(JobExecution.status == ExecutionStatus.PENDING.value, dialect_of(session)),
                ready,
            ),
            JobExecution.tenant_id,
            tenant_id,
        ).group_by(JobExecution.tenant_id, JobExecution.queue)
    ).all()
    for tenant, queue, oldest in oldest_rows:
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
            snap.oldest_pending_s[(tenant, queue)] = max(0.0, (now - oldest).total_seconds())
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


def _histogram(name: str, help_text: str, series: dict[SeriesKey, Histogram]) -> Metric:
    family = HistogramMetricFamily(name, help_text, labels=["tenant", "queue", "job_class"])
    bounds = [f"{b / 1000:g}" for b in RUNTIME_BOUNDS_MS] + ["+Inf"]
    for labels, (buckets, _count, total) in sorted(series.items()):
        cumulative, running = [], 0
        for bound, count in zip(bounds, buckets, strict=True):
            running += count
            cumulative.append((bound, running))
        family.add_metric(list(labels), cumulative, total)
    return family


#: The recorder's lag quantiles: (label value, key of its stats hash, in ms).
LAG_QUANTILES = (("0.5", "lag_p50_ms"), ("0.99", "lag_p99_ms"))


def families(snap: Snapshot) -> Iterator[Metric]:
    """The snapshot as Prometheus metric families, in base units (seconds).

    Series read from SQL carry a `tenant` label; the broker's queue depth, workers, the
    recorder and recoveries are shared by every tenant and carry none.
    """
    finished = CounterMetricFamily(
        "celeriac_jobs_finished",
        "Executions that finished, by tenant, queue, class and status",
        labels=["tenant", "queue", "job_class", "status"],
    )
    for labels, n in sorted(snap.finished.items()):
        finished.add_metric(list(labels), n)
    yield finished
    retried = CounterMetricFamily(
        "celeriac_jobs_retried",
        "Attempts that ended in a retry, by tenant, queue and class",
        labels=["tenant", "queue", "job_class"],
    )
    for retried_labels, n in sorted(snap.retried.items()):
        retried.add_metric(list(retried_labels), n)
    yield retried
    yield _histogram("celeriac_job_runtime_seconds", "Runtime of completed executions", snap.runtimes)
    yield _histogram(
        "celeriac_job_wait_seconds",
        "Queue wait of executions that ran (first start minus created or eta), by finish",
        snap.waits,
    )
    live = GaugeMetricFamily(
        "celeriac_jobs_live", "Executions pending, retrying or processing now", labels=["tenant", "queue", "status"]
    )
    for live_labels, n in sorted(snap.live.items()):
        live.add_metric(list(live_labels), n)
    yield live
    depth = GaugeMetricFamily(
        "celeriac_queue_depth", "Messages in the broker's lists of the queue (every tenant's)", labels=["queue"]
    )
    for queue, n in sorted(snap.depth.items()):
        depth.add_metric([queue], n)
    yield depth
    oldest = GaugeMetricFamily(
        "celeriac_queue_oldest_pending_seconds", "Age of the oldest ready pending job", labels=["tenant", "queue"]
    )
    for (tenant, queue), age in sorted(snap.oldest_pending_s.items()):
        oldest.add_metric([tenant, queue], age)
    yield oldest
    if snap.workers_online is not None:
        yield GaugeMetricFamily("celeriac_workers_online", "Workers with a fresh heartbeat", value=snap.workers_online)
    # A summary of quantiles only: the recorder keeps its last lags, not their count and sum.
    lag = Metric("celeriac_recorder_lag_seconds", "Recorder lag (event to SQL) over its last 10,000 events", "summary")
    for quantile, key in LAG_QUANTILES:
        if key in snap.recorder:
            lag.add_sample(lag.name, {"quantile": quantile}, snap.recorder[key] / 1000)
    yield lag
    for key, help_text in (
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
                {"tenant": t, "queue": q, "job_class": c, "status": s, "value": n}
                for (t, q, c, s), n in sorted(snap.finished.items())
            ],
            "jobs_retried": [
                {"tenant": t, "queue": q, "job_class": c, "value": n} for (t, q, c), n in sorted(snap.retried.items())
            ],
        },
        "gauges": {
            "jobs_live": [
                {"tenant": t, "queue": q, "status": s, "value": n} for (t, q, s), n in sorted(snap.live.items())
            ],
            "queue_depth": [{"queue": q, "value": n} for q, n in sorted(snap.depth.items())],
            "queue_oldest_pending_seconds": [
                {"tenant": t, "queue": q, "value": round(v, 3)} for (t, q), v in sorted(snap.oldest_pending_s.items())
            ],
            "recorder": snap.recorder,
            "recoveries": {kind: snap.recoveries.get(kind, 0.0) for kind in RECOVERIES},
            "workers_online": snap.workers_online,
        },
    }
