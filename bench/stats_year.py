"""A /metrics scrape on day 1 and after a year of job stats (issue 15, "Aggregates bounded").

Simulates `series` (queue, job class) pairs each finishing jobs every minute, i.e. `series`
per-minute rows a minute (the issue's figure: 300, 157 M rows a year if never rolled up):
- day 1: a day of minute rows and their running totals;
- day 365: what a year-old install keeps once retention has rolled up (minute rows for the
  last 48 h, hourly rows to day 60, daily rows to day 365: each one bucket longer, as the
  hourly retention run finds them) and a year of running totals.
Then times `GET /metrics` through the Flask app in this process (and its SQL part alone,
`metrics.take`; the rest is rendering the text, which grows with the series, not the age),
one rollup run (an hour of minutes and a day of hours are due), and, for comparison, the
query /metrics used before (a sum over every minute row) on day 1, extrapolated to a year.

Standalone: `python -m bench.stats_year [--series 300] [--database sqlite|postgresql]`.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

TENANT = "bench"
QUEUES = ("default", "high", "low", "emails", "reports")
#: Timed scrapes (Prometheus scrapes every 15-60 s; a p95 of a few dozen is enough).
SCRAPES = 30
CHUNK = 10_000
#: One series' minute: 10 finished (9 completed, 1 failed), 2 retries, runtimes and waits.
MINUTE = {"completed": 9, "failed": 1, "runtime_count": 9, "runtime_sum_ms": 900, "runtime_max_ms": 300,
          "b3": 5, "b4": 4, "retried": 2, "wait_count": 10, "wait_sum_ms": 1500, "wait_max_ms": 700,
          "w2": 6, "w5": 3, "w6": 1}  # fmt: skip
_MAXED = ("runtime_max_ms", "wait_max_ms")


def _series(count: int) -> list[tuple[str, str]]:
    return [(QUEUES[n % len(QUEUES)], f"bench.class{n // len(QUEUES)}") for n in range(count)]


def _times(minutes: int) -> dict[str, int]:
    """One series' counters over `minutes` minutes (maxima stay maxima)."""
    return {name: value if name in _MAXED else value * minutes for name, value in MINUTE.items()}


def _rows(bucket: str, starts: Iterator[datetime], series: list[tuple[str, str]], minutes: int) -> Iterator[dict]:
    values = _times(minutes)
    for start in starts:
        for queue, job_class in series:
            yield {bucket: start, "tenant_id": TENANT, "queue": queue, "job_class": job_class, **values}


def _span(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    return [start + step * n for n in range(int((end - start) / step))]


def _insert(conn: Any, table: Any, rows: Iterator[dict]) -> int:
    batch: list[dict] = []
    written = 0
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            conn.execute(insert(table), batch)
            written, batch = written + len(batch), []
    if batch:
        conn.execute(insert(table), batch)
    return written + len(batch)


def _seed(now: datetime, count: int, age_days: int) -> dict[str, int]:
    """The stats tables as an install `age_days` old keeps them; returns rows per table."""
    from app.config import get_settings
    from app.db import get_engine
    from app.models import JobStatsDay, JobStatsHour, JobStatsMinute, JobStatsTotal

    ages = get_settings().stats_retention
    series = _series(count)
    top = now.replace(second=0, microsecond=0)
    hour, day = timedelta(hours=1), timedelta(days=1)
    # Year: each resolution reaches one bucket past its age, so one rollup run has an hour of
    # minutes and a day of hours to move (what the hourly retention run finds).
    hourly_cut = (now - timedelta(hours=ages.hourly_after_h)).replace(minute=0, second=0, microsecond=0)
    daily_cut = (now - timedelta(days=ages.daily_after_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    first_minute = top - day + timedelta(minutes=1) if age_days == 1 else hourly_cut - hour
    minutes = _span(first_minute, top + timedelta(minutes=1), timedelta(minutes=1))
    hourly = [] if age_days == 1 else _span(daily_cut - day, first_minute, hour)
    daily = [] if age_days == 1 else _span(daily_cut - day * (age_days - ages.daily_after_days), daily_cut - day, day)
    tables = (JobStatsMinute, JobStatsHour, JobStatsDay, JobStatsTotal)
    with get_engine().begin() as conn:
        for model in tables:
            conn.execute(text(f"DELETE FROM {model.__tablename__}"))
        seeded = {
            "minute": _insert(
                conn,
                JobStatsMinute.__table__,
                _rows("minute", iter(minutes), series, 1),
            ),
            "hour": _insert(conn, JobStatsHour.__table__, _rows("hour", iter(hourly), series, 60)),
            "day": _insert(conn, JobStatsDay.__table__, _rows("day", iter(daily), series, 24 * 60)),
        }
        totals = _times(age_days * 24 * 60)
        conn.execute(
            insert(JobStatsTotal.__table__),
            [{"tenant_id": TENANT, "queue": q, "job_class": c, "last_minute": top,
              **{k: v for k, v in totals.items() if k not in _MAXED}} for q, c in series],
        )  # fmt: skip
    with get_engine().connect() as conn:
        conn.execute(text("ANALYZE"))  # planner statistics, as a periodic ANALYZE would have them
        conn.commit()
    return seeded


def _scrape(client: Any, headers: dict[str, str]) -> tuple[float, float]:
    client.get("/metrics", headers=headers)  # warm: caches and query plans
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        response = client.get("/metrics", headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"/metrics: {response.status_code} {response.get_data(as_text=True)[:300]}")
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _sql_ms(now: datetime) -> tuple[float, float]:
    """Median times of the SQL reading alone (`metrics.take`, no text rendering), and of the
    part of it that finds the queues used in the last day (`known_queues`, minute rows)."""
    from app.config import get_settings
    from app.db import session_scope
    from app.monitoring import metrics
    from app.redis_client import get_redis

    redis_client = get_redis(get_settings().redis_url)
    found: list[float] = []
    with session_scope() as session:
        for reading in (
            lambda: metrics.take(session, redis_client, TENANT, now),
            lambda: metrics.known_queues(session, TENANT, now),
        ):
            times = []
            for _ in range(SCRAPES):
                started = time.perf_counter()
                reading()
                times.append((time.perf_counter() - started) * 1000)
            found.append(statistics.median(times))
    return found[0], found[1]


def _old_sum_ms() -> float:
    """The query /metrics ran before: every minute row summed, grouped by queue and class."""
    from app.db import get_engine
    from app.models import JobStatsMinute
    from app.models.job_stats import SUMMED_COLUMNS

    table = JobStatsMinute.__table__
    query = select(table.c.queue, table.c.job_class, *(func.sum(table.c[n]) for n in SUMMED_COLUMNS))
    query = query.where(table.c.tenant_id == TENANT).group_by(table.c.queue, table.c.job_class)
    with get_engine().connect() as conn:
        conn.execute(query).all()
        started = time.perf_counter()
        conn.execute(query).all()
        return (time.perf_counter() - started) * 1000


def run_stats_year_bench(series: int = 300) -> dict[str, Any]:
    """Time /metrics on day 1 and on day 365; print both, the rollup run and the old query."""
    from app.config import get_settings
    from app.db import db, session_scope
    from app.kernel.stats_rollup import roll_up
    from app.services.auth import create_token
    from ops_ui import create_app

    now = datetime.now(UTC)
    app = create_app({"TESTING": True})
    result: dict[str, Any] = {"series": series}
    with app.app_context():
        token = create_token(db.session, TENANT, "admin", name="bench-stats")
        db.session.commit()
        headers = {"Authorization": f"Bearer {token.raw}"}
        client = app.test_client()
        for day in (1, 365):
            seeded = _seed(now, series, day)
            p50, p95 = _scrape(client, headers)
            found = {"rows": seeded, "p50_ms": round(p50, 1), "p95_ms": round(p95, 1)}
            take_ms, queues_ms = _sql_ms(now)
            result[f"day_{day}"] = {
                **found,
                "take_p50_ms": round(take_ms, 1),
                "known_queues_p50_ms": round(queues_ms, 1),
            }
            if day == 1:
                result["old_sum_day_1_ms"] = round(_old_sum_ms(), 1)
        started = time.perf_counter()
        with session_scope() as session:
            report = roll_up(session, get_settings().stats_retention, now)
        result["rollup"] = {"s": round(time.perf_counter() - started, 2), **vars(report)}
    _print(result)
    return result


def _print(result: dict[str, Any]) -> None:
    first, year = result["day_1"], result["day_365"]
    print(f"/metrics with {result['series']} (queue, class) series, {result['series']} minute rows a minute:")
    for name, found in (("day 1", first), ("day 365", year)):
        rows = ", ".join(f"{n:,} {kind}" for kind, n in found["rows"].items() if n)
        print(
            f"  {name:8s} p50 {found['p50_ms']:7.1f} ms, p95 {found['p95_ms']:7.1f} ms; "
            f"its SQL (metrics.take) p50 {found['take_p50_ms']:.1f} ms, of which known_queues "
            f"{found['known_queues_p50_ms']:.1f} ms   ({rows} rows)"
        )
    scrape = year["p50_ms"] / first["p50_ms"] if first["p50_ms"] else 0.0
    sql = year["take_p50_ms"] / first["take_p50_ms"] if first["take_p50_ms"] else 0.0
    print(f"  day 365 / day 1 (p50): scrape x{scrape:.2f}, its SQL x{sql:.2f}")
    rollup = result["rollup"]
    print(
        f"  one rollup run: {rollup['s']:.2f} s ({rollup['minutes']:,} minute rows into hours, "
        f"{rollup['hours']:,} hour rows into days)"
    )
    old = result["old_sum_day_1_ms"]
    print(
        f"  before: summing every minute row took {old:.0f} ms on day 1; "
        f"a year of them ({result['series'] * 1440 * 365:,} rows) ~ {old * 365 / 1000:.0f} s (x365, extrapolated)"
    )


def main() -> int:
    from bench import env

    parser = argparse.ArgumentParser(prog="python -m bench.stats_year")
    parser.add_argument("--series", type=int, default=300, help="(queue, class) pairs, i.e. minute rows a minute")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        env.prepare(args.database, stack)
        run_stats_year_bench(args.series)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
