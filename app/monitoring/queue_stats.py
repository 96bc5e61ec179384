"""Per-queue statistics for GET /api/jobs/queue/{name}/stats and /api/admin/queue/stats (M1).

Live counts (pending, delayed, processing, oldest) come from indexed SQL queries; the last
hour's completed / failed / retried counts, throughput, runtimes and waits from the
per-minute aggregates the recorder keeps (no scan of job_executions). Every query is
grouped by queue, so asking for all queues costs the same round trips as asking for one.
`broker_depth` is the Redis list length summed over the queue's priority sub-lists, named
as kombu names them under the broker's own transport options (priority steps, separator,
global key prefix) - what Flower gets wrong.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session

from app.broker import celery_app
from app.errors import NotFound
from app.kernel import aggregates
from app.models import ExecutionStatus, JobExecution, JobStatsMinute
from app.monitoring.planner import dialect_of, rare

#: Window of the completed / failed counts and runtime figures.
WINDOW = timedelta(hours=1)
#: kombu's Redis defaults, for options the broker configuration leaves out.
KOMBU_SEP = "\x06\x16"
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)

_PENDING = ExecutionStatus.PENDING.value
_RETRYING = ExecutionStatus.RETRYING.value
_PROCESSING = ExecutionStatus.PROCESSING.value


@dataclass(frozen=True)
class QueueStats:
    queue: str
    pending: int
    delayed: int
    processing: int
    completed: int
    failed: int
    throughput_per_minute: float
    avg_runtime_ms: float | None
    p95_runtime_ms: float | None
    oldest_pending_age_s: float | None
    broker_depth: int
    retried: int = 0
    avg_wait_ms: float | None = None
    p95_wait_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@functools.cache
def broker_transport_options() -> Mapping[str, Any]:
    """The Celery app's `broker_transport_options` (read once: they do not change at runtime)."""

    return dict(celery_app.conf.broker_transport_options or {})


def broker_queue_keys(queue: str, options: Mapping[str, Any] | None = None) -> list[str]:
    """The Redis lists kombu uses for `queue`: one per priority step, prefixed like every key."""
    opts = broker_transport_options() if options is None else options
    sep = str(opts.get("sep", KOMBU_SEP))
    steps = sorted(set(opts.get("priority_steps") or KOMBU_PRIORITY_STEPS))
    prefix = str(opts.get("global_keyprefix") or "")
    return [prefix + (f"{queue}{sep}{step}" if step else queue) for step in steps]


def broker_depths(redis_client: Any, queues: Sequence[str], options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Messages waiting in each queue's lists, all sub-lists of all queues in one round trip."""
    keys = {queue: broker_queue_keys(queue, options) for queue in queues}
    pipe = redis_client.pipeline(transaction=False)
    for names in keys.values():
        for key in names:
            pipe.llen(key)
    lengths = iter(pipe.execute())
    return {queue: sum(int(next(lengths)) for _ in names) for queue, names in keys.items()}


def broker_depth(redis_client: Any, queue: str, options: Mapping[str, Any] | None = None) -> int:
    return broker_depths(redis_client, [queue], options)[queue]


def _scoped(query: Any, column: Any, tenant_id: str | None) -> Any:
    return query if tenant_id is None else query.where(column == tenant_id)


def stats_of_queues(
    session: Session,
    queues: Sequence[str],
    tenant_id: str | None,
    redis_client: Any,
    now: datetime | None = None,
) -> list[QueueStats]:
    """Statistics of `queues` as `tenant_id` sees them (None: all tenants), in their order.

    A queue the tenant never used is left out (the broker's lists hold every tenant's jobs,
    so only an all-tenants view lists a queue for its messages alone).
    """
    if not queues:
        return []
    now = now or datetime.now(UTC)
    names = list(dict.fromkeys(queues))
    ready = or_(JobExecution.eta.is_(None), JobExecution.eta <= now)
    delayed_flag = case((JobExecution.eta > now, 1), else_=0)
    dialect = dialect_of(session)
    live_query = select(JobExecution.queue, JobExecution.status, delayed_flag, func.count()).where(
        JobExecution.queue.in_(names), rare(JobExecution.status.in_([_PENDING, _RETRYING, _PROCESSING]), dialect)
    )
    live: dict[str, dict[str, int]] = {}
    for queue, status, delayed, count in session.execute(
        _scoped(live_query, JobExecution.tenant_id, tenant_id).group_by(
            JobExecution.queue, JobExecution.status, delayed_flag
        )
    ):
        slot = "pending" if status == _PENDING and not delayed else ("delayed" if status != _PROCESSING else status)
        counts = live.setdefault(queue, {})
        counts[slot] = counts.get(slot, 0) + int(count)
    oldest_query = select(JobExecution.queue, func.min(JobExecution.created_at)).where(
        JobExecution.queue.in_(names), rare(JobExecution.status == _PENDING, dialect), ready
    )
    oldest = dict(
        session.execute(_scoped(oldest_query, JobExecution.tenant_id, tenant_id).group_by(JobExecution.queue)).all()
    )
    conditions: list[Any] = [JobStatsMinute.queue.in_(names)]
    if tenant_id is not None:
        conditions.append(JobStatsMinute.tenant_id == tenant_id)
    since = (now - WINDOW).replace(second=0, microsecond=0)
    recent = aggregates.windows(session.connection(), since, "queue", *conditions)
    depths = broker_depths(redis_client, names)
    result = []
    for queue in names:
        if queue not in live and queue not in recent and not _used(session, queue, tenant_id, depths[queue]):
            continue
        result.append(
            _queue_stats(queue, live.get(queue, {}), oldest.get(queue), recent.get(queue), depths[queue], now)
        )
    return result


def _used(session: Session, queue: str, tenant_id: str | None, depth: int) -> bool:
    """Whether the tenant ever had a job in `queue` (an existence probe, not a count)."""
    if tenant_id is None and depth:
        return True
    probe = _scoped(select(JobExecution.id).where(JobExecution.queue == queue), JobExecution.tenant_id, tenant_id)
    return session.scalar(probe.limit(1)) is not None


def _queue_stats(
    queue: str,
    live: dict[str, int],
    oldest: datetime | None,
    recent: aggregates.WindowStats | None,
    depth: int,
    now: datetime,
) -> QueueStats:
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    completed = recent.completed if recent else 0
    return QueueStats(
        queue=queue,
        pending=live.get("pending", 0),
        delayed=live.get("delayed", 0),
        processing=live.get(_PROCESSING, 0),
        completed=completed,
        failed=recent.failed if recent else 0,
        throughput_per_minute=round(completed / (WINDOW.total_seconds() / 60), 3),
        avg_runtime_ms=recent.avg_runtime_ms if recent else None,
        p95_runtime_ms=recent.runtime_percentile(0.95) if recent else None,
        oldest_pending_age_s=round((now - oldest).total_seconds(), 3) if oldest else None,
        broker_depth=depth,
        retried=recent.retried if recent else 0,
        avg_wait_ms=recent.avg_wait_ms if recent else None,
        p95_wait_ms=recent.wait_percentile(0.95) if recent else None,
    )


def queue_stats(
    session: Session, queue: str, tenant_id: str | None, redis_client: Any, now: datetime | None = None
) -> QueueStats:
    """Statistics of `queue` as `tenant_id` sees it (None: all tenants).

    Raises:
        NotFound: the queue has never held a job and has nothing in the broker.
    """
    found = stats_of_queues(session, [queue], tenant_id, redis_client, now)
    if not found:
        raise NotFound(f"no queue named {queue!r}")
    return found[0]
