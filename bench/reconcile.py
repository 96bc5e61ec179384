"""The reconciler at scale (issue 11): one run at a million live rows, and a resync's pace.

1. Steady state: `rows` jobs pending in a queue whose oldest message is still there (a
   backlog). The reconciler must find nothing to do, and cheaply: it runs every
   CELERIAC_RECONCILE_INTERVAL_S in the recorder. Timed over several runs.
2. Redis lost its data: `resync_rows` of them have no message anywhere. One run publishes
   them again; reported as jobs per second (the broker's pace is the limit).

Standalone: `python -m bench.reconcile [--rows 1000000] [--resync-rows 20000] [--database ...]`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text

QUEUE = "bench-live"
RUNS = 7
CHUNK = 10_000


def _seed(rows: int, now: datetime) -> None:
    """`rows` pending jobs published over the last hour, each rebuildable."""
    from app.db import get_engine
    from app.models import JobExecution

    rng = random.Random(11)
    table = JobExecution.__table__
    shape = {"h": {"tenant": "bench", "max_attempts": 1}, "r": 0}
    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM job_attempts"))
        conn.execute(text("DELETE FROM job_executions"))
        for start in range(0, rows, CHUNK):
            batch = []
            for _ in range(start, min(rows, start + CHUNK)):
                published = now - timedelta(seconds=rng.uniform(120, 3600))
                batch.append(
                    {
                        "id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "tenant_id": "bench",
                        "job_class": "bench.noop",
                        "queue": QUEUE,
                        "priority": 5,
                        "status": "pending",
                        "status_ts": 0.0,
                        "attempts": 0,
                        "max_attempts": 1,
                        "encrypted": False,
                        "payload": {},
                        "message": shape,
                        "published_at": published,
                        "created_at": published,
                        "updated_at": published,
                    }
                )
            conn.execute(insert(table), batch)
    with get_engine().connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


def _old_message_at_the_tail(client: Any, broker: Any, published_at: float) -> None:
    """The queue's oldest message, published before every seeded row: a backlog."""
    body = {"headers": {"id": str(uuid.uuid4()), "celeriac_ts": published_at}, "properties": {"priority": 4}}
    for name in broker.queue_lists(QUEUE):
        client.delete(name)
    client.rpush(broker.queue_lists(QUEUE)[0], json.dumps(body))


def _reconciler(settings: Any, client: Any, broker: Any, published: list[str]) -> Any:
    from app.celery_app import celery_app
    from app.db import session_scope
    from app.recorder import Recorder
    from app.recording.reconcile import Reconciler

    writer = Recorder(settings, client, name="bench-reconciler")
    return Reconciler(
        settings,
        client,
        lambda: session_scope(),
        writer.write_and_follow_up,
        backend=celery_app.backend,
        broker=broker,
        publish=lambda row: published.append(row.id),
    )


def run_reconcile_bench(rows: int, resync_rows: int) -> dict[str, Any]:
    from app.celery_app import celery_app
    from app.config import get_settings
    from app.recording.broker_view import Broker
    from app.redis_client import get_redis

    base = get_settings()
    settings = dataclasses.replace(base, reliability=dataclasses.replace(base.reliability, reconcile_grace_s=60))
    client = get_redis(settings.redis_url)
    connection = celery_app.connection_for_write()
    broker = Broker(connection.default_channel)
    result: dict[str, Any] = {"rows": rows}
    try:
        now = datetime.now(UTC)
        _seed(rows, now)
        _old_message_at_the_tail(client, broker, (now - timedelta(hours=2)).timestamp())
        published: list[str] = []
        reconciler = _reconciler(settings, client, broker, published)
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            report = reconciler.run_once()
            times.append((time.perf_counter() - started) * 1000)
            assert report.judged == 0 and not published, "a backlog is not a loss"
        result["steady_ms"] = {"p50": round(statistics.median(times), 1), "max": round(max(times), 1)}
        print(
            f"reconcile at {rows:,} live rows (a backlog, nothing lost): "
            f"p50 {result['steady_ms']['p50']} ms, max {result['steady_ms']['max']} ms per run",
            flush=True,
        )
        if resync_rows:
            _seed(resync_rows, now)
            for name in broker.queue_lists(QUEUE):
                client.delete(name)  # Redis lost every message of the queue
            started = time.perf_counter()
            report = reconciler.run_once()
            elapsed = time.perf_counter() - started
            result["resync"] = {
                "rows": resync_rows,
                "republished_in_one_run": len(published),
                "seconds": round(elapsed, 2),
                "jobs_per_s": round(len(published) / elapsed) if elapsed else None,
            }
            print(
                f"resync after a data loss: {len(published):,} of {resync_rows:,} jobs published again in "
                f"{elapsed:.1f} s ({result['resync']['jobs_per_s']:,} jobs/s, SQL and judgement; the publish "
                "itself stubbed)",
                flush=True,
            )
    finally:
        connection.release()
    return result


def main() -> int:
    from bench import env

    parser = argparse.ArgumentParser(prog="python -m bench.reconcile")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resync-rows", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        env.prepare(args.database, stack)
        run_reconcile_bench(args.rows, args.resync_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
