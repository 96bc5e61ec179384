"""Fold finished executions into `job_stats_minute`, and read windows of it back (M1, M6).

The recorder calls `add` for each execution that became terminal in the batch it is
writing and `flush` before its commit: one upsert per (minute, tenant, queue, class),
counters added on conflict. Terminal transitions happen once per execution, so replays
add nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.models.job_stats import BUCKETS, RUNTIME_BOUNDS_MS, JobStatsMinute

__all__ = ["BUCKETS", "Aggregator", "WindowStats", "bucket_of", "window"]

_TABLE = JobStatsMinute.__table__
_KEY = ("minute", "tenant_id", "queue", "job_class")
_SUMMED = (
    "completed",
    "failed",
    "cancelled",
    "runtime_count",
    "runtime_sum_ms",
    "memory_count",
    "memory_sum_mb",
) + tuple(f"b{n}" for n in range(BUCKETS))


def bucket_of(runtime_ms: int) -> int:
    return bisect.bisect_left(RUNTIME_BOUNDS_MS, runtime_ms)


@dataclass
class MinuteStats:
    values: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(_SUMMED, 0) | {"runtime_max_ms": 0})

    def add(self, status: str, runtime_ms: int | None, memory_mb: float | None) -> None:
        if status in ("completed", "failed", "cancelled"):
            self.values[status] += 1
        if runtime_ms is not None and status == "completed":
            self.values["runtime_count"] += 1
            self.values["runtime_sum_ms"] += int(runtime_ms)
            self.values["runtime_max_ms"] = max(self.values["runtime_max_ms"], int(runtime_ms))
            self.values[f"b{bucket_of(int(runtime_ms))}"] += 1
        if memory_mb is not None:
            self.values["memory_count"] += 1
            self.values["memory_sum_mb"] += float(memory_mb)


class Aggregator:
    """Collects one batch's finished executions by minute, then writes them in one go."""

    def __init__(self) -> None:
        self.pending: dict[tuple[datetime, str, str, str], MinuteStats] = {}

    def add(
        self,
        at: datetime,
        tenant_id: str,
        queue: str,
        job_class: str,
        status: str,
        runtime_ms: int | None,
        memory_mb: float | None,
    ) -> None:
        key = (at.replace(second=0, microsecond=0), tenant_id, queue, job_class)
        self.pending.setdefault(key, MinuteStats()).add(status, runtime_ms, memory_mb)

    def flush(self, conn: Connection) -> int:
        """Upsert what was collected (counters add up on conflict); returns rows touched."""
        insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        for key, stats in self.pending.items():
            stmt = insert(_TABLE).values(**dict(zip(_KEY, key, strict=True)), **stats.values)
            excluded = stmt.excluded
            updates: dict[str, Any] = {name: _TABLE.c[name] + excluded[name] for name in _SUMMED}
            updates["runtime_max_ms"] = case(
                (excluded.runtime_max_ms > _TABLE.c.runtime_max_ms, excluded.runtime_max_ms),
                else_=_TABLE.c.runtime_max_ms,
            )
            conn.execute(stmt.on_conflict_do_update(index_elements=list(_KEY), set_=updates))
        touched = len(self.pending)
        self.pending = {}
        return touched


@dataclass(frozen=True)
class WindowStats:
    """Sums over a window of minutes."""

    completed: int
    failed: int
    cancelled: int
    runtime_count: int
    runtime_sum_ms: int
    runtime_max_ms: int
    memory_count: int
    memory_sum_mb: float
    buckets: tuple[int, ...]

    @property
    def avg_runtime_ms(self) -> float | None:
        return round(self.runtime_sum_ms / self.runtime_count, 1) if self.runtime_count else None

    @property
    def avg_memory_mb(self) -> float | None:
        return round(self.memory_sum_mb / self.memory_count, 3) if self.memory_count else None

    def runtime_percentile(self, q: float) -> float | None:
        """Interpolated within the histogram bucket that holds the q-th runtime."""
        total = sum(self.buckets)
        if not total:
            return None
        rank = q * total
        seen = 0
        for n, count in enumerate(self.buckets):
            if count and seen + count >= rank:
                low = RUNTIME_BOUNDS_MS[n - 1] if n else 0
                high = RUNTIME_BOUNDS_MS[n] if n < len(RUNTIME_BOUNDS_MS) else self.runtime_max_ms
                high = min(high, self.runtime_max_ms) if self.runtime_max_ms else high
                low = min(low, high)
                return round(low + (high - low) * (rank - seen) / count, 1)
            seen += count
        return float(self.runtime_max_ms)


def window(conn: Any, since: datetime, *conditions: Any) -> WindowStats:
    """Sum the minutes from `since` matching `conditions` (e.g. queue, tenant, class)."""
    columns = [func.coalesce(func.sum(_TABLE.c[name]), 0) for name in _SUMMED]
    row = conn.execute(
        select(*columns, func.coalesce(func.max(_TABLE.c.runtime_max_ms), 0)).where(
            _TABLE.c.minute >= since, *conditions
        )
    ).one()
    values = dict(zip(_SUMMED, row[:-1], strict=True))
    return WindowStats(
        completed=int(values["completed"]),
        failed=int(values["failed"]),
        cancelled=int(values["cancelled"]),
        runtime_count=int(values["runtime_count"]),
        runtime_sum_ms=int(values["runtime_sum_ms"]),
        runtime_max_ms=int(row[-1]),
        memory_count=int(values["memory_count"]),
        memory_sum_mb=float(values["memory_sum_mb"]),
        buckets=tuple(int(values[f"b{n}"]) for n in range(BUCKETS)),
    )
