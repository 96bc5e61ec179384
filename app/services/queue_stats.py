"""Per-queue statistics for GET /api/jobs/queue/{name}/stats (M1).

Live counts (pending, delayed, processing, oldest) come from indexed SQL queries; the last
hour's completed / failed counts, throughput and runtimes from the per-minute aggregates the
recorder keeps (no scan of job_executions); `broker_depth` is the Redis list length summed over
the queue's priority sub-lists ("q", "q:1" .. "q:9"), which Flower gets wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import ExecutionStatus, JobExecution, JobStatsMinute
from app.monitoring import aggregates

#: Window of the completed / failed counts and runtime figures.
WINDOW = timedelta(hours=1)


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def broker_queue_keys(queue: str) -> list[str]:
    """Redis list names kombu uses for `queue` with priority steps 0-9 and sep ':'."""
    return [queue] + [f"{queue}:{step}" for step in range(1, 10)]


def broker_depth(redis_client: Any, queue: str) -> int:
    pipe = redis_client.pipeline(transaction=False)
    for key in broker_queue_keys(queue):
        pipe.llen(key)
    return sum(int(n) for n in pipe.execute())


def queue_stats(
    session: Session, queue: str, tenant_id: str | None, redis_client: Any, now: datetime | None = None
) -> QueueStats:
    """Statistics of `queue` as `tenant_id` sees it (None: all tenants).

    Raises:
        NotFound: the queue has never held a job and has nothing in the broker.
    """
    now = now or datetime.now(UTC)
    since = now - WINDOW
    base = select(func.count()).select_from(JobExecution).where(JobExecution.queue == queue)
    if tenant_id is not None:
        base = base.where(JobExecution.tenant_id == tenant_id)
    pending = ExecutionStatus.PENDING.value
    ready = or_(JobExecution.eta.is_(None), JobExecution.eta <= now)

    def count(*conditions: Any) -> int:
        return int(session.scalar(base.where(*conditions)) or 0)

    depth = broker_depth(redis_client, queue)
    used = select(JobExecution.id).where(JobExecution.queue == queue).limit(1)
    if tenant_id is not None:
        used = used.where(JobExecution.tenant_id == tenant_id)
    # A tenant learns only of queues it used; the broker's lists hold every tenant's jobs.
    # (An existence probe, not a count: a busy queue has millions of rows.)
    if session.scalar(used) is None and (tenant_id is not None or depth == 0):
        raise NotFound(f"no queue named {queue!r}")
    oldest_query = select(func.min(JobExecution.created_at)).where(
        JobExecution.queue == queue, JobExecution.status == pending, ready
    )
    if tenant_id is not None:
        oldest_query = oldest_query.where(JobExecution.tenant_id == tenant_id)
    # Completed / failed / runtimes of the window come from the per-minute aggregates.
    conditions = [JobStatsMinute.queue == queue]
    if tenant_id is not None:
        conditions.append(JobStatsMinute.tenant_id == tenant_id)
    recent = aggregates.window(session.connection(), since.replace(second=0, microsecond=0), *conditions)
    oldest = session.scalar(oldest_query)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    completed = recent.completed
    return QueueStats(
        queue=queue,
        pending=count(JobExecution.status == pending, ready),
        # Two counts, each on the (queue, status) index, rather than one OR over the queue.
        delayed=count(JobExecution.status == pending, JobExecution.eta > now)
        + count(JobExecution.status == ExecutionStatus.RETRYING.value),
        processing=count(JobExecution.status == ExecutionStatus.PROCESSING.value),
        completed=completed,
        failed=recent.failed,
        throughput_per_minute=round(completed / (WINDOW.total_seconds() / 60), 3),
        avg_runtime_ms=recent.avg_runtime_ms,
        p95_runtime_ms=recent.runtime_percentile(0.95),
        oldest_pending_age_s=round((now - oldest).total_seconds(), 3) if oldest else None,
        broker_depth=depth,
    )
