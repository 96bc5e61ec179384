"""History seeded for the scale benchmarks: executions (10 % failed), a day of per-minute
aggregates and 100 failure groups, as a busy install would have them.

PostgreSQL is seeded by the server itself (`INSERT ... SELECT` over `generate_series`, a
million rows a statement), so ten million rows take minutes, not an hour of Python; SQLite
by Core bulk inserts. The rows are alike on both: same classes, queues, statuses, ages.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

TENANT = "bench"
QUEUES = ("default", "high", "low", "emails", "reports")
CLASSES = tuple(f"bench.class{n}" for n in range(20))
CHUNK = 10_000
SERVER_CHUNK = 1_000_000
THIRTY_DAYS_S = 30 * 86400

_SERVER_INSERT = """
INSERT INTO job_executions (id, tenant_id, job_class, queue, priority, status, status_ts, attempts,
    max_attempts, encrypted, execution_time_ms, started_at, completed_at, failed_at, error_message,
    fingerprint, created_at, updated_at)
SELECT md5(:salt || i::text)::uuid::text, :tenant, 'bench.class' || (i % 20),
    (ARRAY['default', 'high', 'low', 'emails', 'reports'])[1 + i % 5], 5,
    CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END, extract(epoch FROM t), 1, 1, false,
    least(exp(4 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())), 1e9)::int,
    t, CASE WHEN i % 10 = 0 THEN NULL ELSE t END, CASE WHEN i % 10 = 0 THEN t END,
    CASE WHEN i % 10 = 0 THEN 'RuntimeError: boom' END,
    CASE WHEN i % 10 = 0 THEN 'fp' || lpad((i % 100)::text, 30, '0') END, t, t
FROM (SELECT i, CAST(:newest AS timestamptz) - (random() * :span_s) * interval '1 second' AS t
      FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) AS i) AS generated
"""


def clear() -> None:
    """Empty the tables the seed fills (the benchmark's own database)."""
    from app.db import get_engine

    with get_engine().begin() as conn:
        for table in ("job_attempts", "job_executions", "job_stats_minute", "failure_groups"):
            conn.execute(text(f"DELETE FROM {table}"))


def seed_executions(rows: int, newest: datetime, span_s: float = THIRTY_DAYS_S - 60, salt: str = "a") -> None:
    """`rows` finished executions updated between `newest - span_s` and `newest` (10 % failed)."""
    from app.db import get_engine

    engine = get_engine()
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            _server_side(conn, rows, newest, span_s, salt)
        else:
            _client_side(conn, rows, newest, span_s, salt)


def _server_side(conn: Connection, rows: int, newest: datetime, span_s: float, salt: str) -> None:
    """Millions of rows: the secondary indexes dropped and built again after the insert (a
    sort each instead of millions of random B-tree inserts: minutes instead of half an hour)."""
    from app.models import JobExecution

    indexes = list(JobExecution.__table__.indexes) if rows > SERVER_CHUNK else []
    for index in indexes:
        index.drop(conn)
    for first in range(0, rows, SERVER_CHUNK):
        last = min(rows, first + SERVER_CHUNK) - 1
        conn.execute(
            text(_SERVER_INSERT),
            {"salt": salt, "tenant": TENANT, "newest": newest, "span_s": span_s, "first": first, "last": last},
        )
        if rows > SERVER_CHUNK:
            print(f"    seeded {last + 1:,} of {rows:,} executions", flush=True)
    for index in indexes:
        index.create(conn)
    if indexes:
        print(f"    built {len(indexes)} indexes again", flush=True)


def _client_side(conn: Connection, rows: int, newest: datetime, span_s: float, salt: str) -> None:
    from app.models import JobExecution

    rng = random.Random(f"{salt}7")
    for start in range(0, rows, CHUNK):
        batch = []
        for n in range(start, min(rows, start + CHUNK)):
            at = newest - timedelta(seconds=rng.uniform(0, span_s))
            failed = n % 10 == 0
            batch.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "tenant_id": TENANT,
                    "job_class": CLASSES[n % len(CLASSES)],
                    "queue": QUEUES[n % len(QUEUES)],
                    "priority": 5,
                    "status": "failed" if failed else "completed",
                    "status_ts": at.timestamp(),
                    "attempts": 1,
                    "max_attempts": 1,
                    "encrypted": False,
                    "execution_time_ms": int(rng.lognormvariate(4, 1)),
                    "started_at": at,
                    "completed_at": None if failed else at,
                    "failed_at": at if failed else None,
                    "error_message": "RuntimeError: boom" if failed else None,
                    "fingerprint": f"fp{n % 100:030d}" if failed else None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        conn.execute(insert(JobExecution.__table__), batch)


def seed_aggregates(rows: int, now: datetime) -> None:
    """One day of per-minute aggregates (runtimes, waits, retries) and 100 failure groups."""
    from app.db import get_engine
    from app.models import FailureGroup, JobStatsMinute

    minutes = [now.replace(second=0, microsecond=0) - timedelta(minutes=m) for m in range(1440)]
    stats = [
        {"minute": minute, "tenant_id": TENANT, "queue": "default", "job_class": job_class,
         "completed": 9, "failed": 1, "runtime_count": 9, "runtime_sum_ms": 900,
         "runtime_max_ms": 300, "b3": 5, "b4": 4, "retried": 2, "wait_count": 10,
         "wait_sum_ms": 1500, "wait_max_ms": 700, "w2": 6, "w5": 3, "w6": 1}
        for minute in minutes for job_class in CLASSES[:5]
    ]  # fmt: skip
    groups = [
        {"tenant_id": TENANT, "fingerprint": f"fp{n:030d}", "exception_type": "RuntimeError",
         "message": f"boom <n> {n}", "count": rows // 1000, "first_seen_at": now - timedelta(days=30),
         "last_seen_at": now - timedelta(minutes=n), "job_classes": [CLASSES[n % 20]], "sample_job_ids": []}
        for n in range(100)
    ]  # fmt: skip
    with get_engine().begin() as conn:
        conn.execute(insert(JobStatsMinute.__table__), stats)
        conn.execute(insert(FailureGroup.__table__), groups)


def analyse() -> None:
    """Planner statistics and (PostgreSQL) a vacuumed visibility map, as autovacuum would leave a
    table that grew to this size over weeks rather than minutes."""
    from app.db import get_engine

    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def seed(rows: int, now: datetime | None = None) -> datetime:
    """Clear, then seed `rows` executions over the last 30 days and their aggregates."""
    now = now or datetime.now(UTC)
    clear()
    seed_executions(rows, now - timedelta(seconds=60))
    seed_aggregates(rows, now)
    analyse()
    return now
