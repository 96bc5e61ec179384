"""Rate-limited throughput vs its cap (J10): does a global limit deliver what it promises?

A queue limited to CAP_PER_S jobs per second (CELERIAC_QUEUE_RATE_LIMITS) gets a backlog
larger than the measured window can drain; one worker (-c 2) runs it. Each run stamps its
start on the Redis clock; the rate is the number of starts in the first WINDOW_S seconds.
Over-limit jobs go back to the queue for their reserved slot, so the figure shows both
that the cap holds (never more) and that waiting jobs come back in time (not much less).

Standalone: `python -m bench.ratelimit` (prepares Redis and SQLite like `make bench`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from bench import procs

QUEUE = "bench-ratelimit"
CAP_PER_S = 50
WINDOW_S = 10
#: Seconds after the first run before the steady-state window opens: the whole backlog
#: arrives at once and the worker first re-queues it (a start-up transient, reported apart).
WARMUP_S = 5
#: Jobs queued: enough that the queue never runs dry before both windows closed.
JOBS = CAP_PER_S * (WARMUP_S + WINDOW_S + 2)


def _env(redis_url: str) -> dict[str, str]:
    from bench.env import mode_env

    env = mode_env(True)  # the gate runs from the recording signals: tracking must be on
    env["REDIS_URL"] = redis_url
    env["CELERIAC_TASK_MODULES"] = "bench.ratelimit_tasks"
    env["CELERIAC_QUEUE_RATE_LIMITS"] = f"{QUEUE}={CAP_PER_S}/1"
    return env


def _max_in_any_second(starts: list[float]) -> int:
    best, low = 0, 0
    for high, start in enumerate(starts):
        while starts[low] <= start - 1.0:
            low += 1
        best = max(best, high - low + 1)
    return best


def run_ratelimit_bench(redis_url: str, log_dir: Path) -> dict[str, Any]:
    """Run the benchmark against `redis_url` (an empty database); subprocess logs go to `log_dir`."""
    import redis

    from app.celery_app import celery_app
    from bench.ratelimit_tasks import STARTS_KEY

    client = redis.Redis.from_url(redis_url)
    client.delete(STARTS_KEY)
    # The backlog is queued before the worker starts; the window opens at the first run.
    for _ in range(JOBS):
        celery_app.send_task("bench.rl.stamp", queue=QUEUE)
    with procs.running("ratelimit-worker", procs.worker_argv(QUEUE, 2, "bench-rl@%h"), _env(redis_url), log_dir) as w:
        procs.wait_until(
            lambda: (raw := client.lrange(STARTS_KEY, 0, 0)) and float(raw[0]) + WARMUP_S + WINDOW_S + 1 < _now(client),
            WARMUP_S + WINDOW_S + 60,
            "the measured window to pass",
            proc=w,
        )
    starts = sorted(float(raw) for raw in client.lrange(STARTS_KEY, 0, -1))
    first = starts[0]
    cold = [s for s in starts if s < first + WINDOW_S]
    steady = [s for s in starts if first + WARMUP_S <= s < first + WARMUP_S + WINDOW_S]
    measured = len(steady) / WINDOW_S
    result = {
        "configured_per_s": CAP_PER_S,
        "measured_per_s": round(measured, 2),
        "ratio": round(measured / CAP_PER_S, 4),
        "max_in_any_second": _max_in_any_second(steady),
        "cold_start_per_s": round(len(cold) / WINDOW_S, 2),
        "cold_start_max_in_any_second": _max_in_any_second(cold),
        "window_s": WINDOW_S,
        "warmup_s": WARMUP_S,
        "jobs_queued": JOBS,
    }
    print(
        f"rate limit: configured {CAP_PER_S}/s, measured {measured:.1f}/s ({100 * measured / CAP_PER_S:.1f} %)"
        f" after {WARMUP_S}s; from a cold {JOBS}-job backlog: {result['cold_start_per_s']}/s,"
        f" up to {result['cold_start_max_in_any_second']} in one second",
        flush=True,
    )
    return result


def _now(client: Any) -> float:
    seconds, micros = client.time()
    return float(seconds) + micros / 1_000_000


def main() -> int:
    from bench import env

    with contextlib.ExitStack() as stack:
        backends = env.prepare("sqlite", stack)
        log_dir = backends.tmp / "logs"
        log_dir.mkdir()
        print(run_ratelimit_bench(backends.redis_url, log_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
