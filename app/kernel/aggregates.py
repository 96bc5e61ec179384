"""Fold finished executions into `job_stats_minute`, and read windows of it back (M1, M4, M6).

The recorder calls `add` for each execution that became terminal in the batch it is
writing, `retry` for each attempt the batch closed as retrying, and `flush` before its
commit: one upsert statement for the batch (one row per (minute, tenant, queue, class)),
counters added on conflict, and one adding the same counts to the running totals
(`job_stats_total`, what /metrics reads). Terminal transitions happen once per execution
and an attempt closes once, so replays add nothing.

A window is read from every resolution kept: minute rows from `since`, and the hour and
day rows (app.kernel.stats_rollup) that start at or after `since`, so a window reaching
past the minute rows' 48 h counts whole hours (and past 60 days whole days) inside it.

Waits are recorded with the terminal transition, not at the start: by then the `pub`
event (tenant, queue, created_at, eta) has surely arrived, the execution is counted once
by the same rule as its runtime, and no extra row is written per start.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Connection, case, func, literal_column, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.visitors import replacement_traverse

from app.models.job_stats import (
    BUCKETS,
    MAXED_COLUMNS,
    RUNTIME_BOUNDS_MS,
    SUMMED_COLUMNS,
    JobStatsDay,
    JobStatsHour,
    JobStatsMinute,
    JobStatsTotal,
)

__all__ = ["BUCKETS", "Aggregator", "WindowStats", "bucket_of", "wait_ms", "window", "windows"]

_TABLE = JobStatsMinute.__table__
_KEY = ("minute", "tenant_id", "queue", "job_class")
_TOTALS = JobStatsTotal.__table__
_TOTAL_KEY = ("tenant_id", "queue", "job_class")
#: Every resolution a window reads: (table, column of the bucket's start).
_RESOLUTIONS = ((_TABLE, "minute"), (JobStatsHour.__table__, "hour"), (JobStatsDay.__table__, "day"))


def bucket_of(runtime_ms: int) -> int:
    return bisect.bisect_left(RUNTIME_BOUNDS_MS, runtime_ms)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def wait_ms(created_at: datetime | None, eta: datetime | None, started_at: datetime | None) -> int | None:
    """Time (ms) a job waited in its queue: first start minus max(created, eta).

    An eta after the first start belongs to a retry's re-publish, not to this wait.
    """
    created, eta, started = _aware(created_at), _aware(eta), _aware(started_at)
    if created is None or started is None:
        return None
    ready = eta if eta is not None and created < eta <= started else created
    return max(0, int((started - ready).total_seconds() * 1000))


@dataclass
class MinuteStats:
    values: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(SUMMED_COLUMNS + MAXED_COLUMNS, 0))

    def add(self, status: str, runtime_ms: int | None, memory_mb: float | None, waited_ms: int | None = None) -> None:
        values = self.values
        if status in ("completed", "failed", "cancelled"):
            values[status] += 1
        if runtime_ms is not None and status == "completed":
            values["runtime_count"] += 1
            values["runtime_sum_ms"] += int(runtime_ms)
            values["runtime_max_ms"] = max(values["runtime_max_ms"], int(runtime_ms))
            values[f"b{bucket_of(int(runtime_ms))}"] += 1
        if memory_mb is not None:
            values["memory_count"] += 1
            values["memory_sum_mb"] += float(memory_mb)
        if waited_ms is not None:
            values["wait_count"] += 1
            values["wait_sum_ms"] += int(waited_ms)
            values["wait_max_ms"] = max(values["wait_max_ms"], int(waited_ms))
            values[f"w{bucket_of(int(waited_ms))}"] += 1


class Aggregator:
    """Collects one batch's finished executions and retries by minute, then writes them in one go."""

    def __init__(self) -> None:
        self.pending: dict[tuple[datetime, str, str, str], MinuteStats] = {}

    def _minute(self, at: datetime, tenant_id: str, queue: str, job_class: str) -> MinuteStats:
        key = (at.replace(second=0, microsecond=0), tenant_id, queue, job_class)
        stats = self.pending.get(key)
        if stats is None:
            stats = self.pending[key] = MinuteStats()
        return stats

    def add(
        self,
        at: datetime,
        tenant_id: str,
        queue: str,
        job_class: str,
        status: str,
        runtime_ms: int | None,
        memory_mb: float | None,
        waited_ms: int | None = None,
    ) -> None:
        """An execution that turned terminal at `at` (count it only in that transaction)."""
        self._minute(at, tenant_id, queue, job_class).add(status, runtime_ms, memory_mb, waited_ms)

    def retry(self, at: datetime, tenant_id: str, queue: str, job_class: str) -> None:
        """An attempt that ended in `retrying` at `at` (count it only in the transaction that closed it)."""
        self._minute(at, tenant_id, queue, job_class).values["retried"] += 1

    def flush(self, conn: Connection) -> int:
        """Upsert what was collected in one statement (counters add up on conflict); returns rows touched."""
        if not self.pending:
            return 0
        insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
        stmt = insert(_TABLE)
        excluded = stmt.excluded
        updates: dict[str, Any] = {name: _TABLE.c[name] + excluded[name] for name in SUMMED_COLUMNS}
        for name in MAXED_COLUMNS:
            updates[name] = case((excluded[name] > _TABLE.c[name], excluded[name]), else_=_TABLE.c[name])
        # Sorted keys: concurrent recorders lock the same rows in the same order (no deadlock).
        params = [dict(zip(_KEY, key, strict=True), **self.pending[key].values) for key in sorted(self.pending)]
        conn.execute(stmt.on_conflict_do_update(index_elements=list(_KEY), set_=updates), params)
        self._add_to_totals(conn, insert)
        touched = len(self.pending)
        self.pending = {}
        return touched

    def _add_to_totals(self, conn: Connection, insert: Any) -> None:
        """The same counts added to the running totals, after the minute rows (one lock order)."""
        totals: dict[tuple[str, str, str], dict[str, Any]] = {}
        for (minute, *key), stats in self.pending.items():
            into = totals.setdefault(
                (key[0], key[1], key[2]), {**dict.fromkeys(SUMMED_COLUMNS, 0), "last_minute": minute}
            )
            for name in SUMMED_COLUMNS:
                into[name] += stats.values[name]
            into["last_minute"] = max(into["last_minute"], minute)
        stmt = insert(_TOTALS)
        excluded = stmt.excluded
        updates: dict[str, Any] = {name: _TOTALS.c[name] + excluded[name] for name in SUMMED_COLUMNS}
        last = _TOTALS.c.last_minute
        updates["last_minute"] = case((excluded.last_minute > last, excluded.last_minute), else_=last)
        params = [dict(zip(_TOTAL_KEY, key, strict=True), **totals[key]) for key in sorted(totals)]
        conn.execute(stmt.on_conflict_do_update(index_elements=list(_TOTAL_KEY), set_=updates), params)


def _percentile(buckets: Sequence[int], maximum: int, q: float) -> float | None:
    """Interpolated within the histogram bucket that holds the q-th value."""
    total = sum(buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for n, count in enumerate(buckets):
        if count and seen + count >= rank:
            low = RUNTIME_BOUNDS_MS[n - 1] if n else 0
            high = RUNTIME_BOUNDS_MS[n] if n < len(RUNTIME_BOUNDS_MS) else maximum
            high = min(high, maximum) if maximum else high
            low = min(low, high)
            return round(low + (high - low) * (rank - seen) / count, 1)
        seen += count
    return float(maximum)


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
    retried: int = 0
    wait_count: int = 0
    wait_sum_ms: int = 0
    wait_max_ms: int = 0
    wait_buckets: tuple[int, ...] = (0,) * BUCKETS

    @property
    def avg_runtime_ms(self) -> float | None:
        return round(self.runtime_sum_ms / self.runtime_count, 1) if self.runtime_count else None

    @property
    def avg_memory_mb(self) -> float | None:
        return round(self.memory_sum_mb / self.memory_count, 3) if self.memory_count else None

    @property
    def avg_wait_ms(self) -> float | None:
        return round(self.wait_sum_ms / self.wait_count, 1) if self.wait_count else None

    @property
    def attempts(self) -> int:
        """Attempts that ended in the window: retried ones plus final outcomes."""
        return self.retried + self.completed + self.failed

    @property
    def retry_rate(self) -> float | None:
        """Share of ended attempts that ended in a retry."""
        return round(self.retried / self.attempts, 4) if self.attempts else None

    def runtime_percentile(self, q: float) -> float | None:
        return _percentile(self.buckets, self.runtime_max_ms, q)

    def wait_percentile(self, q: float) -> float | None:
        return _percentile(self.wait_buckets, self.wait_max_ms, q)


def _partial_sums(table: Any) -> list[Any]:
    return [func.sum(table.c[name]).label(name) for name in SUMMED_COLUMNS] + [
        func.max(table.c[name]).label(name) for name in MAXED_COLUMNS
    ]


#: Built once: a window is read on every dashboard refresh, and building some 200 SQL
#: function objects per read cost more than the query itself.
_PARTIAL_SUMS = {table: _partial_sums(table) for table, _start in _RESOLUTIONS}
#: The partial sums added up, by name (columns of the union below).
_ADDED_UP: list[Any] = [func.coalesce(func.sum(literal_column(name)), 0) for name in SUMMED_COLUMNS] + [
    func.coalesce(func.max(literal_column(name)), 0) for name in MAXED_COLUMNS
]


def _on(table: Any, condition: Any) -> Any:
    """`condition`, written on job_stats_minute's columns, on the same-named columns of `table`."""
    if table is _TABLE:
        return condition

    def swap(element: Any, **_kw: Any) -> Any:
        return table.c[element.name] if isinstance(element, Column) and element.table is _TABLE else None

    return replacement_traverse(condition, {}, swap)


def _every_resolution(since: datetime, by: str | None, conditions: tuple[Any, ...]) -> Any:
    """Partial sums from each table (each through its own key's index), to be added up."""
    parts = []
    for table, start in _RESOLUTIONS:
        grouping = [table.c[by]] if by else []
        part = select(*grouping, *_PARTIAL_SUMS[table]).where(
            table.c[start] >= since, *(_on(table, c) for c in conditions)
        )
        parts.append(part.group_by(*grouping))
    return union_all(*parts).subquery("resolutions")


def _stats(row: Sequence[Any]) -> WindowStats:
    values = dict(zip(SUMMED_COLUMNS + MAXED_COLUMNS, row, strict=True))
    return WindowStats(
        completed=int(values["completed"]),
        failed=int(values["failed"]),
        cancelled=int(values["cancelled"]),
        runtime_count=int(values["runtime_count"]),
        runtime_sum_ms=int(values["runtime_sum_ms"]),
        runtime_max_ms=int(values["runtime_max_ms"]),
        memory_count=int(values["memory_count"]),
        memory_sum_mb=float(values["memory_sum_mb"]),
        buckets=tuple(int(values[f"b{n}"]) for n in range(BUCKETS)),
        retried=int(values["retried"]),
        wait_count=int(values["wait_count"]),
        wait_sum_ms=int(values["wait_sum_ms"]),
        wait_max_ms=int(values["wait_max_ms"]),
        wait_buckets=tuple(int(values[f"w{n}"]) for n in range(BUCKETS)),
    )


def window(conn: Any, since: datetime, *conditions: Any) -> WindowStats:
    """Sum the stats from `since` matching `conditions`: on tenant_id, queue or job_class,
    written with JobStatsMinute's columns and applied to every resolution."""
    source = _every_resolution(since, None, conditions)
    return _stats(conn.execute(select(*_ADDED_UP).select_from(source)).one())


def windows(conn: Any, since: datetime, by: str, *conditions: Any) -> dict[str, WindowStats]:
    """Like `window`, one query for every value of column `by` ("queue" or "job_class")."""
    source = _every_resolution(since, by, conditions)
    key: Any = literal_column(by)
    rows = conn.execute(select(key, *_ADDED_UP).select_from(source).group_by(key)).all()
    return {row[0]: _stats(row[1:]) for row in rows}
