"""Bounded job stats (issue 15): minutes rolled into hours and days, the oldest days deleted,
/metrics' counters kept as running totals that never go down.

The test database is shared, so every figure is read for a tenant of the test's own; a
rollup moves every tenant's old rows, which the readers find at their new resolution.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from app.config import ConfigError, load_settings
from app.config_stats import StatsRetention
from app.db import db, get_engine, session_scope
from app.kernel import aggregates
from app.kernel.aggregates import Aggregator, WindowStats
from app.kernel.stats_rollup import roll_up
from app.models import JobStatsDay, JobStatsHour, JobStatsMinute, JobStatsTotal
from app.models.job_stats import SUMMED_COLUMNS
from app.monitoring import dashboard, metrics
from app.monitoring.performance import performance, queue_throughput

#: On the hour, so windows of whole hours and days read the same before and after a rollup.
NOW = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULTS = StatsRetention()
QUEUES = ("default", "emails")
CLASSES = ("app.Report", "app.Mail", "app.Sync")


def _record(tenant: str, moments: list[datetime], seed: int = 1) -> None:
    """Finished runs and retries at `moments`, written as the recorder writes them."""
    rng = random.Random(seed)
    aggregator = Aggregator()
    for at in moments:
        queue, job_class = rng.choice(QUEUES), rng.choice(CLASSES)
        status = rng.choice(("completed", "completed", "completed", "failed", "cancelled"))
        runtime = int(rng.lognormvariate(5, 1.5)) if status == "completed" else None
        aggregator.add(at, tenant, queue, job_class, status, runtime, rng.random() * 10, rng.randrange(0, 5000))
        if rng.random() < 0.2:
            aggregator.retry(at, tenant, queue, job_class)
    with get_engine().begin() as conn:
        aggregator.flush(conn)


def _history(tenant: str, days: int = 90, seed: int = 1) -> None:
    """A run every ~8 hours for `days`, denser (every ~15 minutes) over the last three days."""
    rng = random.Random(seed)
    sparse = [NOW - timedelta(minutes=rng.randrange(3 * 1440, days * 1440)) for _ in range(days * 3)]
    dense = [NOW - timedelta(minutes=rng.randrange(1, 3 * 1440)) for _ in range(300)]
    _record(tenant, sparse + dense, seed)


def _everything(tenant: str, since: datetime = EPOCH) -> WindowStats:
    with get_engine().connect() as conn:
        return aggregates.window(conn, since, JobStatsMinute.tenant_id == tenant)


def _by(tenant: str, by: str, since: datetime) -> dict[str, WindowStats]:
    with get_engine().connect() as conn:
        return aggregates.windows(conn, since, by, JobStatsMinute.tenant_id == tenant)


def _totals(tenant: str) -> dict[tuple[str, str], dict[str, float]]:
    table = JobStatsTotal.__table__
    with get_engine().connect() as conn:
        rows = conn.execute(select(table).where(table.c.tenant_id == tenant)).mappings().all()
    return {(row["queue"], row["job_class"]): {name: row[name] for name in SUMMED_COLUMNS} for row in rows}


def _minute_sums(tenant: str) -> dict[tuple[str, str], dict[str, float]]:
    table = JobStatsMinute.__table__
    sums = [func.sum(table.c[name]).label(name) for name in SUMMED_COLUMNS]
    query = select(table.c.queue, table.c.job_class, *sums).where(table.c.tenant_id == tenant)
    with get_engine().connect() as conn:
        rows = conn.execute(query.group_by(table.c.queue, table.c.job_class)).mappings().all()
    return {(row["queue"], row["job_class"]): {name: row[name] for name in SUMMED_COLUMNS} for row in rows}


def _rows(model: Any, tenant: str) -> list[datetime]:
    table = model.__table__
    bucket = table.c[table.primary_key.columns.keys()[0]]
    with get_engine().connect() as conn:
        return list(conn.scalars(select(bucket).where(table.c.tenant_id == tenant)))


def _roll(config: StatsRetention = DEFAULTS, now: datetime = NOW) -> Any:
    with session_scope() as session:
        return roll_up(session, config, now)


def _runs(stats: WindowStats) -> int:
    return stats.completed + stats.failed + stats.cancelled


def _same_counts(a: dict[Any, dict[str, float]], b: dict[Any, dict[str, float]]) -> bool:
    """Equal, memory sums (floats added in another order) to the last few digits."""
    return a.keys() == b.keys() and all(
        abs(a[key][name] - b[key][name]) < 1e-6 * max(1.0, abs(a[key][name])) for key in a for name in SUMMED_COLUMNS
    )


def _close(a: WindowStats, b: WindowStats) -> bool:
    """Equal, memory sums (floats added in another order) to the last few digits."""
    return replace(a, memory_sum_mb=0.0) == replace(b, memory_sum_mb=0.0) and (
        abs(a.memory_sum_mb - b.memory_sum_mb) < 1e-6 * max(1.0, a.memory_sum_mb)
    )


def test_rollup_keeps_every_sum_and_moves_each_row_to_its_resolution(app: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _history(tenant)
    before = _everything(tenant)
    by_class = _by(tenant, "job_class", EPOCH)
    assert before.completed > 100

    report = _roll()

    assert report.minutes > 0 and report.hours > 0
    assert _close(_everything(tenant), before)
    after_by_class = _by(tenant, "job_class", EPOCH)
    assert set(after_by_class) == set(by_class)
    assert all(_close(after_by_class[name], by_class[name]) for name in by_class)
    hourly_cutoff = NOW - timedelta(hours=DEFAULTS.hourly_after_h)
    daily_cutoff = (NOW - timedelta(days=DEFAULTS.daily_after_days)).replace(hour=0)  # whole UTC days
    assert min(_rows(JobStatsMinute, tenant)) >= hourly_cutoff
    hours = _rows(JobStatsHour, tenant)
    assert hours and all(daily_cutoff <= h < hourly_cutoff and h.minute == 0 for h in hours)
    days = _rows(JobStatsDay, tenant)
    assert days and all(d < daily_cutoff and (d.hour, d.minute) == (0, 0) for d in days)


def test_rollup_run_twice_changes_nothing_more(app: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _history(tenant, seed=2)
    before = _everything(tenant)
    _roll()
    tables = [sorted(_rows(model, tenant)) for model in (JobStatsMinute, JobStatsHour, JobStatsDay)]

    again = _roll()

    assert (again.minutes, again.hours, again.days_purged) == (0, 0, 0)
    assert [sorted(_rows(model, tenant)) for model in (JobStatsMinute, JobStatsHour, JobStatsDay)] == tables
    assert _close(_everything(tenant), before)


def test_readers_give_the_same_answers_before_and_after_rollup(app: Any, redis_client: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _history(tenant, seed=3)
    week = NOW - timedelta(days=7)
    quarter = (NOW - timedelta(days=90)).replace(hour=0)  # reaches the day rows: whole days

    def read() -> dict[str, Any]:
        with session_scope() as session:
            conn = session.connection()
            return {
                "performance_7d": performance(conn, tenant, week, NOW),
                "throughput_7d": queue_throughput(conn, tenant, week, NOW),
                "queues_90d": _by(tenant, "queue", quarter),
                "failures_hour_day": dashboard.failure_counts(session, tenant, NOW),
                "day_chart": dashboard.series(session, tenant, "day", NOW),
                "metrics": metrics.take(session, redis_client, tenant, NOW).finished,
            }

    before = read()
    assert before["performance_7d"] and before["failures_hour_day"].last_day > 0
    _roll()
    after = read()

    for key in ("throughput_7d", "failures_hour_day", "day_chart", "metrics"):
        assert after[key] == before[key], key
    assert [replace(c, avg_memory_mb=None) for c in after["performance_7d"]] == [
        replace(c, avg_memory_mb=None) for c in before["performance_7d"]
    ]
    assert set(after["queues_90d"]) == set(before["queues_90d"])
    assert all(_close(after["queues_90d"][q], before["queues_90d"][q]) for q in before["queues_90d"])


def test_a_window_starting_inside_a_rolled_hour_counts_the_whole_hours_after_it(app: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    hour = NOW - timedelta(days=5)
    _record(tenant, [hour + timedelta(minutes=10), hour + timedelta(minutes=50), hour + timedelta(minutes=70)])
    since = hour + timedelta(minutes=30)
    assert _runs(_everything(tenant, since)) == 2
    _roll()
    # The hour from `hour` holds runs before and after `since`: it is left out whole.
    assert _runs(_everything(tenant, since)) == 1
    assert _runs(_everything(tenant, hour)) == 3


def test_totals_are_what_the_recorder_wrote_and_never_go_down(app: Any, redis_client: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _history(tenant, days=120, seed=4)
    _history(tenant, days=120, seed=5)  # a second recorder batch adds to the same rows
    totals = _totals(tenant)
    assert totals and _same_counts(totals, _minute_sums(tenant))
    with get_engine().connect() as conn:
        last = conn.scalar(select(func.max(JobStatsTotal.last_minute)).where(JobStatsTotal.tenant_id == tenant))
        assert last == max(_rows(JobStatsMinute, tenant))

    def counters() -> dict[Any, int]:
        with session_scope() as session:
            snap = metrics.take(session, redis_client, tenant, NOW)
        return {**snap.finished, **snap.retried}

    scraped = counters()
    # Rolled up, then every day row past 70 days deleted: the windows lose them, the counters don't.
    report = _roll(replace(DEFAULTS, keep_days=70))
    assert report.days_purged > 0
    assert _everything(tenant).completed < sum(row["completed"] for row in totals.values())
    assert _totals(tenant) == totals
    assert counters() == scraped
    assert sum(n for key, n in scraped.items() if key[-1] == "completed") == sum(
        row["completed"] for row in totals.values()
    )


def test_a_late_minute_after_its_hour_was_rolled_up_is_counted_once(app: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    old = NOW - timedelta(days=4)
    _record(tenant, [old, old + timedelta(minutes=1)])
    _roll()
    _record(tenant, [old + timedelta(minutes=2)], seed=9)  # e.g. a recorder catching up
    assert _runs(_everything(tenant)) == 3
    _roll()
    assert _rows(JobStatsMinute, tenant) == [] and set(_rows(JobStatsHour, tenant)) == {old}
    assert _runs(_everything(tenant)) == 3


def test_two_rollups_and_a_recorder_at_once_count_every_run_once(app: Any) -> None:
    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _history(tenant, days=70, seed=6)
    late = [NOW - timedelta(days=3, minutes=n) for n in range(40)]
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def run(work: Any) -> None:
        try:
            start.wait(timeout=10)
            work()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(_roll,)) for _ in range(2)]
    threads.append(threading.Thread(target=run, args=(lambda: _record(tenant, late, seed=7),)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    _roll()
    expected = _totals(tenant)
    after = _everything(tenant)
    assert after.completed == sum(row["completed"] for row in expected.values())
    assert after.retried == sum(row["retried"] for row in expected.values())
    assert after.runtime_sum_ms == sum(row["runtime_sum_ms"] for row in expected.values())
    assert min(_rows(JobStatsMinute, tenant), default=NOW) >= NOW - timedelta(hours=48)


def test_purge_history_rolls_the_stats_up_too(app: Any, settings: Any) -> None:
    from app.services.retention import purge_history

    tenant = f"roll-{uuid.uuid4().hex[:8]}"
    _record(tenant, [NOW - timedelta(days=3)])
    report = purge_history(db.session, settings, now=NOW)
    assert report.stats.minutes >= 1 and report.as_dict()["stats_minutes_rolled"] == report.stats.minutes
    assert _rows(JobStatsMinute, tenant) == [] and len(_rows(JobStatsHour, tenant)) == 1


def test_stats_ages_are_read_and_checked_at_start() -> None:
    assert load_settings({}).stats_retention == StatsRetention(48, 60, 400)
    read = load_settings(
        {
            "CELERIAC_STATS_HOURLY_AFTER_HOURS": "72",
            "CELERIAC_STATS_DAILY_AFTER_DAYS": "30",
            "CELERIAC_STATS_RETENTION_DAYS": "0",
        }
    )
    assert read.stats_retention == StatsRetention(72, 30, 0)
    for wrong in (
        {"CELERIAC_STATS_HOURLY_AFTER_HOURS": "12"},  # the dashboard's day chart reads a day of minutes
        {"CELERIAC_STATS_HOURLY_AFTER_HOURS": "96", "CELERIAC_STATS_DAILY_AFTER_DAYS": "4"},
        {"CELERIAC_STATS_RETENTION_DAYS": "30"},  # before the rows even become daily
    ):
        with pytest.raises(ConfigError, match="CELERIAC_STATS_"):
            load_settings(wrong)
