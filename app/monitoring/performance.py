"""Performance per job class (M6), from the aggregates: no scan of executions.

Windows up to a week reach past the 48 h of minute rows into the hourly ones
(app.kernel.aggregates reads every resolution), so they count whole hours at their start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from app.kernel import aggregates
from app.kernel.system_jobs import is_system
from app.models import JobDefinition, JobExecution, JobStatsMinute
from app.monitoring.advice import Advice, advice, failed_page, workers_page
from app.monitoring.planner import dialect_of, rare

#: A class whose failures (of finished runs) pass this share gets a recommendation.
HIGH_FAILURE_RATE = 0.10
#: Average memory growth per run (MB) that marks a class as memory-heavy.
MEMORY_HEAVY_MB = 100.0


@dataclass(frozen=True)
class ClassPerformance:
    job_class: str
    completed: int
    failed: int
    success_rate: float | None
    throughput_per_minute: float
    avg_runtime_ms: float | None
    p95_runtime_ms: float | None
    max_runtime_ms: int
    avg_memory_mb: float | None
    recommendations: list[str]
    retried: int = 0
    retry_rate: float | None = None
    avg_wait_ms: float | None = None
    p95_wait_ms: float | None = None
    #: `recommendations` with their references (links in the console); not in the API's answer.
    advice: list[Advice] = field(default_factory=list, compare=False)

    @property
    def system(self) -> bool:
        """One of Celeriac's own maintenance tasks (app.kernel.system_jobs)."""
        return is_system(self.job_class)

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        del shown["advice"]
        return shown


#: A p95 past this share of the class's timeout means the timeout is too tight.
TIGHT_TIMEOUT_SHARE = 0.8
#: Retry-rate advice needs at least this many ended attempts in the window.
RETRY_MIN_ATTEMPTS = 10


def _recommendations(
    name: str, stats: aggregates.WindowStats, timeout_s: int | None, retry_rate_limit: float
) -> list[Advice]:
    """What to do about a class; for Celeriac's own maintenance tasks, only about their failures."""
    out: list[Advice] = []
    finished = stats.completed + stats.failed
    if finished and stats.failed / finished > HIGH_FAILURE_RATE:
        out.append(
            advice(
                f"{name}: {100 * stats.failed / finished:.0f} % of runs failed - see ",
                failed_page("/api/monitoring/failures"),
                " for the causes; retry only failures that can succeed",
            )
        )
    if is_system(name):
        return out
    more: list[str | Advice] = []
    p95 = stats.runtime_percentile(0.95)
    if p95 is not None and stats.avg_runtime_ms and p95 > 5 * stats.avg_runtime_ms:
        more.append(f"{name}: p95 {p95:.0f} ms is over 5x the average - a few slow runs; check their payloads")
    if p95 is not None and timeout_s and p95 > TIGHT_TIMEOUT_SHARE * timeout_s * 1000:
        more.append(
            f"{name}: p95 {p95 / 1000:.1f} s is close to its {timeout_s} s timeout - raise the timeout "
            "(job definition) or split the work"
        )
    if stats.attempts >= RETRY_MIN_ATTEMPTS and stats.retry_rate is not None and stats.retry_rate > retry_rate_limit:
        more.append(
            advice(
                f"{name}: {100 * stats.retry_rate:.0f} % of attempts ended in a retry ({stats.retried} of "
                f"{stats.attempts}) - see ",
                failed_page("/api/monitoring/failures"),
                " for the errors; fix the cause, list errors that "
                "cannot succeed in dont_retry_on, or lengthen the backoff if a dependency is overloaded",
            )
        )
    if stats.avg_memory_mb is not None and stats.avg_memory_mb > MEMORY_HEAVY_MB:
        more.append(
            f"{name}: {stats.avg_memory_mb:.0f} MB more memory per run - give it its own queue and workers "
            "with a lower max-memory-per-child"
        )
    return out + [m if isinstance(m, Advice) else advice(m) for m in more]


def starving_advice(queues: list[dict[str, Any]]) -> list[Advice]:
    """For each queue whose jobs wait while none finish: check that a worker consumes it."""
    return [
        advice(
            f"queue {q['queue']}: {q['pending']} jobs wait and none finished in the window - it is starving; "
            "check that a worker consumes it (",
            workers_page("GET /api/admin/queue/workers"),
            ")",
        )
        for q in queues
        if q["starving"]
    ]


def performance(
    conn: Any, tenant_id: str | None, since: datetime, now: datetime, retry_rate_limit: float = 0.2
) -> list[ClassPerformance]:
    """Every job class that finished or retried runs since `since`, busiest first (one grouped query)."""
    table = JobStatsMinute.__table__
    scope = [table.c.tenant_id == tenant_id] if tenant_id is not None else []
    by_class = aggregates.windows(conn, since, "job_class", *scope)
    timeouts = dict(
        conn.execute(
            select(JobDefinition.job_class, JobDefinition.timeout).where(JobDefinition.tenant_id.is_(None))
        ).all()
    )
    minutes = max(1.0, (now - since) / timedelta(minutes=1))
    result = []
    for name, stats in by_class.items():
        finished = stats.completed + stats.failed
        advised = _recommendations(name, stats, timeouts.get(name), retry_rate_limit)
        result.append(
            ClassPerformance(
                job_class=name,
                completed=stats.completed,
                failed=stats.failed,
                success_rate=round(stats.completed / finished, 4) if finished else None,
                throughput_per_minute=round(stats.completed / minutes, 3),
                avg_runtime_ms=stats.avg_runtime_ms,
                p95_runtime_ms=stats.runtime_percentile(0.95),
                max_runtime_ms=stats.runtime_max_ms,
                avg_memory_mb=stats.avg_memory_mb,
                recommendations=[a.text for a in advised],
                retried=stats.retried,
                retry_rate=stats.retry_rate,
                avg_wait_ms=stats.avg_wait_ms,
                p95_wait_ms=stats.wait_percentile(0.95),
                advice=advised,
            )
        )
    return sorted(result, key=lambda c: (-(c.completed + c.failed), c.job_class))


def queue_throughput(conn: Any, tenant_id: str | None, since: datetime, now: datetime) -> list[dict[str, Any]]:
    """Completed per minute for each queue with finished or pending jobs; starving queues flagged.

    A queue is starving when jobs wait in it and none finished in the window.
    """
    scope = [JobStatsMinute.tenant_id == tenant_id] if tenant_id is not None else []
    pending = select(JobExecution.queue, func.count()).where(rare(JobExecution.status == "pending", dialect_of(conn)))
    if tenant_id is not None:
        pending = pending.where(JobExecution.tenant_id == tenant_id)
    done = {q: stats.completed for q, stats in aggregates.windows(conn, since, "queue", *scope).items()}
    waiting = {q: int(n) for q, n in conn.execute(pending.group_by(JobExecution.queue)).all()}
    minutes = max(1.0, (now - since) / timedelta(minutes=1))
    return [
        {
            "queue": queue,
            "throughput_per_minute": round(done.get(queue, 0) / minutes, 3),
            "pending": waiting.get(queue, 0),
            "starving": waiting.get(queue, 0) > 0 and done.get(queue, 0) == 0,
        }
        for queue in sorted(set(done) | set(waiting))
    ]
