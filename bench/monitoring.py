"""Monitoring endpoints at scale (issue 5): p50 / p95 at 10,000 and at 1,000,000 executions.

Seeds executions (10 % failed), their per-minute aggregates and failure groups with Core
bulk inserts, then times every monitoring endpoint and the first and a deep page of
`GET /api/jobs` through the Flask app in this process (no network, so the figures are
the server's own work). Target: p95 under 100 ms, and under 1.5x the 10,000-row figure.

Standalone: `python -m bench.monitoring [--rows 1000000] [--database sqlite|postgresql]`.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, text

TENANT = "bench"
QUEUES = ("default", "high", "low", "emails", "reports")
CLASSES = tuple(f"bench.class{n}" for n in range(20))
#: Timed requests per endpoint: enough that one scheduling hiccup on a shared box is not the p95.
REQUESTS = 100
CHUNK = 10_000
ENDPOINTS = (
    "/api/jobs/queue/default/stats",
    "/api/admin/queue/stats",
    "/api/admin/queue/health",
    "/api/admin/queue/metrics",
    "/metrics",
    "/api/monitoring/performance",
    "/api/monitoring/failures",
    "/api/monitoring/stuck",
    "/api/monitoring/slow",
    "/api/admin/queue/workers",
    "/api/jobs?limit=50",
)


def _clear() -> None:
    from app.db import get_engine

    with get_engine().begin() as conn:
        for table in ("job_attempts", "job_executions", "job_stats_minute", "failure_groups"):
            conn.execute(text(f"DELETE FROM {table}"))


def _seed(rows: int, now: datetime) -> None:
    """`rows` executions over the last 30 days (10 % failed), one day of aggregates (runtimes,
    waits, retries), 100 groups."""
    from app.db import get_engine
    from app.models import FailureGroup, JobExecution, JobStatsMinute

    rng = random.Random(7)
    executions = JobExecution.__table__
    with get_engine().begin() as conn:
        for start in range(0, rows, CHUNK):
            batch = []
            for n in range(start, min(rows, start + CHUNK)):
                created = now - timedelta(seconds=rng.uniform(60, 30 * 86400))
                failed = n % 10 == 0
                runtime = int(rng.lognormvariate(4, 1))
                batch.append(
                    {
                        "id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "tenant_id": TENANT,
                        "job_class": CLASSES[n % len(CLASSES)],
                        "queue": QUEUES[n % len(QUEUES)],
                        "priority": 5,
                        "status": "failed" if failed else "completed",
                        "status_ts": created.timestamp(),
                        "attempts": 1,
                        "max_attempts": 1,
                        "encrypted": False,
                        "execution_time_ms": runtime,
                        "started_at": created,
                        "completed_at": None if failed else created,
                        "failed_at": created if failed else None,
                        "error_message": "RuntimeError: boom" if failed else None,
                        "fingerprint": f"fp{n % 100:030d}" if failed else None,
                        "created_at": created,
                        "updated_at": created,
                    }
                )
            conn.execute(insert(executions), batch)
        minutes = [now.replace(second=0, microsecond=0) - timedelta(minutes=m) for m in range(1440)]
        stats = []
        for minute in minutes:
            for job_class in CLASSES[:5]:
                stats.append(
                    {"minute": minute, "tenant_id": TENANT, "queue": "default", "job_class": job_class,
                     "completed": 9, "failed": 1, "runtime_count": 9, "runtime_sum_ms": 900,
                     "runtime_max_ms": 300, "b3": 5, "b4": 4, "retried": 2, "wait_count": 10,
                     "wait_sum_ms": 1500, "wait_max_ms": 700, "w2": 6, "w5": 3, "w6": 1}
                )  # fmt: skip
        conn.execute(insert(JobStatsMinute.__table__), stats)
        groups = [
            {"tenant_id": TENANT, "fingerprint": f"fp{n:030d}", "exception_type": "RuntimeError",
             "message": f"boom <n> {n}", "count": rows // 1000, "first_seen_at": now - timedelta(days=30),
             "last_seen_at": now - timedelta(minutes=n), "job_classes": [CLASSES[n % 20]], "sample_job_ids": []}
            for n in range(100)
        ]  # fmt: skip
        conn.execute(insert(FailureGroup.__table__), groups)
    with get_engine().connect() as conn:
        # Planner statistics, as autovacuum (PostgreSQL) or a periodic ANALYZE would have them
        # for a table that grew to this size over weeks rather than seconds.
        conn.execute(text("ANALYZE"))
        conn.commit()


def _deep_cursor() -> str | None:
    """A cursor halfway down the tenant's jobs list."""
    from app.db import session_scope
    from app.models import JobExecution
    from app.services.jobs import encode_cursor

    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(JobExecution))
        row = session.scalars(
            select(JobExecution)
            .where(JobExecution.tenant_id == TENANT)
            .order_by(JobExecution.created_at.desc(), JobExecution.id.desc())
            .offset(int(total or 0) // 2)
            .limit(1)
        ).first()
        return encode_cursor(row) if row is not None else None


def _time(client: Any, headers: dict[str, str], path: str) -> tuple[float, float]:
    client.get(path, headers=headers)  # warm: caches and query plans
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def measure(rows: int) -> dict[str, tuple[float, float]]:
    """Seed `rows` executions and time every endpoint; returns path -> (p50 ms, p95 ms)."""
    from app.db import db
    from app.services.auth import create_token
    from ops_ui import create_app

    _clear()
    now = datetime.now(UTC)
    _seed(rows, now)
    app = create_app({"TESTING": True})
    with app.app_context():
        token = create_token(db.session, TENANT, "admin", name="bench")
        db.session.commit()
        headers = {"Authorization": f"Bearer {token.raw}"}
        client = app.test_client()
        paths = list(ENDPOINTS)
        cursor = _deep_cursor()
        if cursor:
            paths.append(f"/api/jobs?limit=50&cursor={cursor}")
        return {path: _time(client, headers, path) for path in paths}


def run_monitoring_bench(rows: int) -> dict[str, Any]:
    """Measure at 10,000 rows and at `rows`; print the table with the ratio per endpoint."""
    small = measure(10_000)
    large = measure(rows)
    print(f"monitoring endpoints (p50 / p95 ms) at 10,000 and {rows:,} executions:", flush=True)
    result: dict[str, Any] = {"rows": rows, "endpoints": {}}
    for path, (p50, p95) in large.items():
        key = path if "cursor=" not in path else "/api/jobs?limit=50&cursor=<deep>"
        base = small.get(path) or next((v for p, v in small.items() if "cursor=" in p), (0.0, 0.0))
        ratio = p95 / base[1] if base[1] else None
        result["endpoints"][key] = {
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "p95_at_10k_ms": round(base[1], 1),
        }
        verdict = "ok" if p95 < 100 and (ratio is None or ratio < 1.5) else "MISSED"
        print(f"  {key:45s} {p50:7.1f} / {p95:7.1f}   (10k: {base[1]:6.1f}; x{ratio or 0:.2f}) {verdict}", flush=True)
    return result


def main() -> int:
    from bench import env

    parser = argparse.ArgumentParser(prog="python -m bench.monitoring")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        env.prepare(args.database, stack)
        run_monitoring_bench(args.rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
