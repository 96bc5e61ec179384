"""One drain: publish N no-op jobs, start a worker, time it until every job has finished.

Completion is read from Redis without touching the worker: the queue's priority lists
are empty and kombu's `unacked` hash is empty (acks are late, so a message leaves it
only after its task ran). The worker's own `inspect stats` total then confirms N.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

from bench import procs
from bench.env import flush_redis_db, mode_env
from bench.tasks import READY_KEY

QUEUE = "bench"
#: kombu's Redis transport keeps delivered, unacknowledged messages in this hash.
UNACKED_KEY = "unacked"
#: Seconds allowed for every row to land after the drain (issue: 120 s).
ROWS_DEADLINE_S = 120.0
POLL_S = 0.01


@dataclass
class DrainResult:
    mode: str
    n: int
    publish_s: float
    drain_s: float
    jobs_per_s: float
    rows: int | None = None
    rows_completed: int | None = None
    rows_after_drain_s: float | None = None
    lag_p50_ms: float | None = None
    lag_p99_ms: float | None = None
    recorder_events: int | None = None
    #: CPU seconds spent during the drain, by process role (see `_cpu`).
    cpu_s: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _queue_keys(queue: str) -> list[str]:
    return [queue] + [f"{queue}:{p}" for p in range(1, 10)]


def remaining(client: redis.Redis, queue: str = QUEUE) -> int:
    """Messages still queued plus delivered-but-unacknowledged ones."""
    pipe = client.pipeline(transaction=True)
    for key in _queue_keys(queue):
        pipe.llen(key)
    pipe.hlen(UNACKED_KEY)
    return sum(int(v) for v in pipe.execute())


def _cpu(client: redis.Redis, worker: procs.Proc, recorder: procs.Proc | None) -> dict[str, float]:
    """Cumulative CPU seconds of each role: where the drain's time goes, on a shared box."""
    import psutil

    main = psutil.Process(worker.pid)
    own = main.cpu_times()
    live = 0.0
    for child in main.children():
        with contextlib.suppress(psutil.Error):
            live += sum(child.cpu_times()[:2])
    info: dict[str, Any] = client.info("cpu")
    cpu = {
        "worker_main": own.user + own.system,
        "worker_children": own.children_user + own.children_system + live,
        "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
    }
    if recorder is not None:
        cpu["recorder"] = sum(psutil.Process(recorder.pid).cpu_times()[:2])
    return cpu


def _worker_total(hostname: str) -> int:
    from app.celery_app import celery_app

    replies: dict[str, Any] = celery_app.control.inspect(destination=[hostname], timeout=5.0, limit=1).stats() or {}
    return int(replies.get(hostname, {}).get("total", {}).get("bench.noop", 0))


def _sql_counts() -> tuple[int, int]:
    from app.db import get_engine

    with get_engine().connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM job_executions")).scalar_one()
        done = conn.execute(text("SELECT count(*) FROM job_executions WHERE status = 'completed'")).scalar_one()
    return int(total), int(done)


def _clear_tables() -> None:
    from app.db import get_engine

    with get_engine().begin() as conn:
        conn.execute(text("DELETE FROM job_attempts"))
        conn.execute(text("DELETE FROM job_executions"))


def _wait_drained(client: redis.Redis, worker: procs.Proc, hostname: str, n: int) -> float:
    """Poll until nothing is queued or unacked (seen twice) and the worker ran N; returns when."""
    deadline = time.monotonic() + max(600.0, n / 20)
    while True:
        if remaining(client) == 0:
            seen_at = time.time()
            time.sleep(POLL_S)
            if remaining(client) == 0 and _worker_total(hostname) >= n:
                return seen_at
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain not finished; {remaining(client)} messages left")
        time.sleep(POLL_S)


@contextlib.contextmanager
def _maybe_recorder(tracking: bool, env: dict[str, str], log_dir: Path) -> Iterator[procs.Proc | None]:
    if not tracking:
        yield None
        return
    with procs.running("recorder", procs.python("-m", "bench.recorder"), env, log_dir) as proc:
        yield proc


def run_drain(mode: str, tracking: bool, n: int, concurrency: int, redis_url: str, log_dir: Path) -> DrainResult:
    """Publish `n` jobs with the mode's settings, then drain them with one worker."""
    client = redis.Redis.from_url(redis_url)
    flush_redis_db(redis_url)
    env = mode_env(tracking)
    if tracking:
        _clear_tables()
    with _maybe_recorder(tracking, env, log_dir) as recorder:
        started = time.perf_counter()
        out = procs.run_to_end(
            f"publish-{mode}", procs.python("-m", "bench.publish", "--n", str(n), "--queue", QUEUE), env, log_dir, 600
        )
        publish_s = time.perf_counter() - started
        print(f"  {mode}: {out.strip().splitlines()[-1]}", flush=True)
        if recorder is not None:
            # The recorder first catches up with the `pub` events, then forgets their lag.
            try:
                procs.wait_until(lambda: _sql_counts()[0] >= n, 120, "pending rows", 0.1, recorder)
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}: {_sql_counts()[0]} of {n}; recorder log:\n{recorder.tail()}") from exc
            os.kill(recorder.pid, signal.SIGUSR1)
        hostname = f"bench-{mode}-{os.getpid()}@bench"
        with procs.running(f"worker-{mode}", procs.worker_argv(QUEUE, concurrency, hostname), env, log_dir) as worker:
            ready_key = READY_KEY.format(hostname=hostname)
            ready_at = float(procs.wait_until(lambda: client.get(ready_key), 60, "worker ready", 0.005, worker) or 0)
            cpu_before = _cpu(client, worker, recorder)
            done_at = _wait_drained(client, worker, hostname, n)
            cpu_after = _cpu(client, worker, recorder)
            drain_s = done_at - ready_at
            result = DrainResult(mode, n, round(publish_s, 2), round(drain_s, 3), round(n / drain_s, 1))
            result.cpu_s = {role: round(cpu_after[role] - cpu_before[role], 2) for role in cpu_after}
            if recorder is not None:
                # Still inside the worker's block: its stop (warm shutdown) is not counted.
                _collect_recording(result, client, recorder, done_at)
    return result


def _collect_recording(result: DrainResult, client: redis.Redis, recorder: procs.Proc, done_at: float) -> None:
    from app import redis_keys

    n = result.n
    try:
        procs.wait_until(lambda: _sql_counts()[1] >= n, ROWS_DEADLINE_S, "completed rows", 0.02, recorder)
    except TimeoutError as exc:
        print(f"  warning: {exc}", flush=True)
    rows_at = time.time()
    result.rows, result.rows_completed = _sql_counts()
    result.rows_after_drain_s = round(max(0.0, rows_at - done_at), 3)

    def fresh_stats() -> dict[bytes, bytes] | None:
        stats: dict[bytes, bytes] = client.hgetall(redis_keys.RECORDER_STATS)  # type: ignore[assignment]
        updated = float(stats.get(b"updated_at", 0))
        return stats if updated > rows_at and int(stats.get(b"events_total", 0)) >= 3 * n else None

    try:
        stats = procs.wait_until(fresh_stats, 10, "recorder stats", 0.1, recorder) or {}
    except TimeoutError:
        stats = client.hgetall(redis_keys.RECORDER_STATS)  # type: ignore[assignment]
    result.lag_p50_ms = float(stats.get(b"lag_p50_ms", 0))
    result.lag_p99_ms = float(stats.get(b"lag_p99_ms", 0))
    result.recorder_events = int(stats.get(b"events_total", 0))
