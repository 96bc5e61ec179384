"""Performance per job class (M6), from the per-minute aggregates: no scan of executions."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.models import JobStatsMinute
from app.monitoring import aggregates

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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _recommendations(name: str, stats: aggregates.WindowStats) -> list[str]:
    advice = []
    finished = stats.completed + stats.failed
    if finished and stats.failed / finished > HIGH_FAILURE_RATE:
        advice.append(
            f"{name}: {100 * stats.failed / finished:.0f} % of runs failed - see /api/monitoring/failures "
            "for the causes; retry only failures that can succeed"
        )
    p95 = stats.runtime_percentile(0.95)
    if p95 is not None and stats.avg_runtime_ms and p95 > 5 * stats.avg_runtime_ms:
        advice.append(f"{name}: p95 {p95:.0f} ms is over 5x the average - a few slow runs; check their payloads")
    if stats.avg_memory_mb is not None and stats.avg_memory_mb > MEMORY_HEAVY_MB:
        advice.append(
            f"{name}: {stats.avg_memory_mb:.0f} MB more memory per run - give it its own queue and workers "
            "with a lower max-memory-per-child"
        )
    return advice


def performance(conn: Any, tenant_id: str | None, since: datetime, now: datetime) -> list[ClassPerformance]:
    """Every job class that finished runs since `since`, busiest first."""
    table = JobStatsMinute.__table__
    conditions = [table.c.minute >= since]
    if tenant_id is not None:
        conditions.append(table.c.tenant_id == tenant_id)
    classes = [row[0] for row in conn.execute(select(table.c.job_class).where(*conditions).distinct())]
    minutes = max(1.0, (now - since) / timedelta(minutes=1))
    result = []
    for name in classes:
        extra = [table.c.job_class == name] + ([table.c.tenant_id == tenant_id] if tenant_id is not None else [])
        stats = aggregates.window(conn, since, *extra)
        finished = stats.completed + stats.failed
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
                recommendations=_recommendations(name, stats),
            )
        )
    return sorted(result, key=lambda c: c.completed + c.failed, reverse=True)
