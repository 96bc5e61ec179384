"""Per-minute aggregates of finished executions (M1, M4, M6): what stats read instead of scanning.

One row per (minute, tenant, queue, job class), added to by the recorder in the same
transaction that makes executions terminal (and by the web process when it ends a job
itself), so a replayed event adds nothing. Runtimes and waits are kept as fixed
histograms, so a p95 over any window is a sum of rows, not a sort. Retries are counted
in the transaction that closes the attempt as retrying.

Older rows are rolled up (app.kernel.stats_rollup): minutes into `job_stats_hour`, hours
into `job_stats_day`, same columns, each count in exactly one table. `job_stats_total`
holds running totals per (tenant, queue, class) since install, for /metrics' counters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import UTCDateTime

#: Upper bounds (ms) of the runtime and wait histograms' buckets; the last one is open-ended.
RUNTIME_BOUNDS_MS: tuple[int, ...] = (10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000)
BUCKETS = len(RUNTIME_BOUNDS_MS) + 1


class JobStatsMinute(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "job_stats_minute"
    __table_args__ = (
        Index("ix_stats_queue_minute", "queue", "minute"),
        Index("ix_stats_class_minute", "job_class", "minute"),
    )

    minute: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    completed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    failed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    runtime_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    runtime_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    runtime_max_ms: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    memory_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    memory_sum_mb: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    #: Attempts that ended in `retrying` (a retry is scheduled or the worker was lost).
    retried: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Queue waits (first start minus max(created, eta)) of jobs that ran, by finish minute.
    wait_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    wait_sum_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    wait_max_ms: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


for _n in range(BUCKETS):
    # b0..b13: completed runs whose runtime fell in bucket n (see RUNTIME_BOUNDS_MS).
    setattr(JobStatsMinute, f"b{_n}", mapped_column(f"b{_n}", Integer, nullable=False, default=0))
    # w0..w13: waits in bucket n, same bounds.
    setattr(JobStatsMinute, f"w{_n}", mapped_column(f"w{_n}", Integer, nullable=False, default=0))


#: Counters merged by adding: the recorder's upsert adds a batch's minute to the stored one,
#: and every reader (windows, health, /metrics) sums them over minutes.
SUMMED_COLUMNS: tuple[str, ...] = (
    "completed",
    "failed",
    "cancelled",
    "retried",
    "runtime_count",
    "runtime_sum_ms",
    "memory_count",
    "memory_sum_mb",
    "wait_count",
    "wait_sum_ms",
    *(f"b{n}" for n in range(BUCKETS)),
    *(f"w{n}" for n in range(BUCKETS)),
)
#: Columns merged by keeping the larger value.
MAXED_COLUMNS: tuple[str, ...] = ("runtime_max_ms", "wait_max_ms")


def _add_counters(model: Any, names: tuple[str, ...]) -> None:
    """The counter columns of a rolled-up or total table: 64-bit, as sums of many minutes grow."""
    for name in names:
        kind = Float if name == "memory_sum_mb" else BigInteger
        setattr(model, name, mapped_column(name, kind, nullable=False, default=0))


class JobStatsHour(db.Model):  # type: ignore[name-defined,misc]
    """Minute rows older than CELERIAC_STATS_HOURLY_AFTER_HOURS, added up by hour."""

    __tablename__ = "job_stats_hour"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_class: Mapped[str] = mapped_column(String(200), primary_key=True)


class JobStatsDay(db.Model):  # type: ignore[name-defined,misc]
    """Hour rows older than CELERIAC_STATS_DAILY_AFTER_DAYS, added up by (UTC) day."""

    __tablename__ = "job_stats_day"

    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_class: Mapped[str] = mapped_column(String(200), primary_key=True)


class JobStatsTotal(db.Model):  # type: ignore[name-defined,misc]
    """Everything ever added to the per-minute stats, per (tenant, queue, class): /metrics' counters.

    Added to in the recorder's transaction with the minute rows; never decreased (rollup
    and retention leave it alone), so a Prometheus counter never goes down and a scrape
    reads one row per (tenant, queue, class) whatever the age of the install.
    """

    __tablename__ = "job_stats_total"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    queue: Mapped[str] = mapped_column(String(100), primary_key=True)
    job_class: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: The latest minute counted here: "queues used in the last day" without a scan of minutes.
    last_minute: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


_add_counters(JobStatsHour, SUMMED_COLUMNS + MAXED_COLUMNS)
_add_counters(JobStatsDay, SUMMED_COLUMNS + MAXED_COLUMNS)
_add_counters(JobStatsTotal, SUMMED_COLUMNS)
