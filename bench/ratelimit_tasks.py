"""The rate-limit benchmark's task (loaded by its worker through CELERIAC_TASK_MODULES)."""

from __future__ import annotations

from app.celery_app import celery_app
from app.config import get_settings
from app.redis_client import get_redis

#: List of run start times (Redis server clock, seconds) written by `stamp`.
STARTS_KEY = "bench:ratelimit:starts"


@celery_app.task(name="bench.rl.stamp")
def stamp() -> None:
    """Note when this run started; the benchmark counts runs per second from these."""
    client = get_redis(get_settings().redis_url)
    seconds, micros = client.time()
    client.rpush(STARTS_KEY, f"{seconds}.{micros:06d}")
