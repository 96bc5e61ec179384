"""Batch dispatch versus single dispatch of the same no-op jobs (issue 3's benchmark).

Both sides go through Celeriac's own paths with tracking on: `create_batch` (what
`batch([...]).dispatch()` and `POST /api/batches` use) against one `submit` per job
(what `Job.dispatch()` and `POST /api/jobs/dispatch` use). A worker and a recorder run
throughout; "complete" is from the first dispatch until every row is completed (and, for
the batch, its `finally` job too).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench import procs
from bench.env import flush_redis_db, mode_env
from bench.tasks import READY_KEY

QUEUE = "bench"


@dataclass
class BatchResult:
    mode: str
    n: int
    dispatch_s: float
    complete_s: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _completed() -> int:
    from app.db import get_engine

    with get_engine().connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM job_executions WHERE status = 'completed'")).scalar_one())


def _clear() -> None:
    from app.db import get_engine

    with get_engine().begin() as conn:
        for table in ("job_attempts", "job_executions", "job_batches"):
            conn.execute(text(f"DELETE FROM {table}"))


def _specs(n: int) -> list[Any]:
    from app.kernel.dispatching import DispatchSpec

    return [DispatchSpec(job_class="bench.noop", payload={"i": i}, queue=QUEUE) for i in range(n)]


def _dispatch(mode: str, n: int) -> int:
    """Dispatch `n` jobs; returns how many rows mean "done" (the batch adds its finally job)."""
    from app.backends.celery_publisher import CeleryPublisher
    from app.backends.celery_registry import CeleryRegistry
    from app.composition.batches import BatchRequest, create_batch
    from app.composition.runtime import get_hub
    from app.composition.submit import submit
    from app.config import get_settings
    from app.db import session_scope
    from app.kernel.dispatching import DispatchSpec

    settings = get_settings()
    registry, publisher = CeleryRegistry(), CeleryPublisher()
    with session_scope() as session:
        if mode == "batch":
            finale = DispatchSpec(job_class="bench.noop", payload={"i": -1}, queue=QUEUE)
            request = BatchRequest(tenant_id="default", jobs=_specs(n), name="bench", finally_=finale)
            create_batch(
                session, request, registry=registry, publisher=publisher, settings=settings, hub=get_hub(settings)
            )
            return n + 1
        for spec in _specs(n):
            submit(session, spec, registry=registry, publisher=publisher, settings=settings)
    return n


def run_batch_vs_single(n: int, concurrency: int, redis_url: str, log_dir: Path) -> list[BatchResult]:
    """One batch of `n` jobs, then the same `n` jobs one by one, each drained by a fresh worker."""
    import redis

    from app.jobs.celery_backend import load_task_modules
    from celeriac import signals

    load_task_modules()
    client = redis.Redis.from_url(redis_url)
    results = []
    for mode in ("batch", "single"):
        flush_redis_db(redis_url)
        _clear()
        env = mode_env(True)
        hostname = f"bench-{mode}-{os.getpid()}@bench"
        with (
            procs.running(f"recorder-{mode}", procs.python("-m", "bench.recorder"), env, log_dir) as recorder,
            procs.running(f"worker-{mode}", procs.worker_argv(QUEUE, concurrency, hostname), env, log_dir) as worker,
        ):
            procs.wait_until(
                lambda h=hostname: client.get(READY_KEY.format(hostname=h)), 60, "worker ready", 0.01, worker
            )
            started = time.perf_counter()
            expected = _dispatch(mode, n)
            signals.flush_buffer()
            dispatched = time.perf_counter()
            procs.wait_until(
                lambda e=expected: _completed() >= e, max(300.0, n / 20), f"{mode} completed", 0.05, recorder
            )
            done = time.perf_counter()
        result = BatchResult(mode, n, round(dispatched - started, 2), round(done - started, 2))
        print(f"  {mode}: dispatch {result.dispatch_s:.2f} s, complete {result.complete_s:.2f} s", flush=True)
        results.append(result)
    return results
