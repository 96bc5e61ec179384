"""Jobs for the rate-limit (J10) and middleware (J11) tests.

Workers load this module when a test adds it to CELERIAC_TASK_MODULES. Each run stamps
its start (Redis server time, so every process uses one clock) under `tests:rl:<key>`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.jobs import Job
from app.jobs.middleware import Authorize, Logging, Middleware, Throttle, Timing
from app.ratelimit import RateLimit
from app.redis_client import get_redis

#: Queue of the rate-limit test workers only (the session worker never takes these jobs).
RL_QUEUE = "ratelimit-tests"
#: A queue limited by CELERIAC_QUEUE_RATE_LIMITS in the test workers' environment.
CONFIG_QUEUE = "ratelimit-config"
#: A queue limited through the API before the test workers start.
API_QUEUE = "ratelimit-api"


def stamps_key(key: str) -> str:
    return f"tests:rl:{key}"


def stamp(key: str, **extra: Any) -> None:
    client = get_redis(get_settings().redis_url)
    seconds, micros = client.time()
    record = {"t": seconds + micros / 1_000_000, "pid": os.getpid(), **extra}
    client.rpush(stamps_key(key), json.dumps(record))


def stamps(key: str) -> list[dict[str, Any]]:
    client = get_redis(get_settings().redis_url)
    return [json.loads(raw) for raw in client.lrange(stamps_key(key), 0, -1)]


class LimitedJob(Job):
    """One run per 3 seconds for the whole class."""

    name = "tests.rl.limited"
    queue = RL_QUEUE
    max_tries = 2
    rate_limits = [RateLimit(1, per=3)]

    def handle(self, key: str, **_: Any) -> int:
        stamp(key, attempt=self.attempt)
        return self.attempt


class CappedJob(Job):
    """Five runs per 2 seconds, stated as Throttle middleware, whichever worker runs it."""

    name = "tests.rl.capped"
    queue = RL_QUEUE
    middleware = [Logging(), Timing(), Throttle(5, per=2)]

    def handle(self, key: str, **_: Any) -> None:
        stamp(key, worker=self.task.request.hostname)


class PerUserJob(Job):
    """One run per minute and user: users do not wait for each other."""

    name = "tests.rl.per_user"
    queue = RL_QUEUE
    rate_limits = [RateLimit(1, per=60, key="user:{user_id}")]

    def handle(self, key: str, user_id: int, **_: Any) -> None:
        stamp(key, user=user_id)


class GuardedJob(Job):
    """Runs for admins only; anyone else's job fails at once (no retries)."""

    name = "tests.rl.guarded"
    queue = RL_QUEUE
    max_tries = 3

    class Audit(Middleware):
        def failed(self, job: Job, exc: BaseException) -> None:
            stamp(f"failed:{job.job_id}", error=str(exc))

    middleware = [Audit(), Authorize(lambda job, payload: payload.get("role") == "admin", reason="needs role admin")]

    def handle(self, key: str, **_: Any) -> None:
        stamp(key)


@celery_app.task(name="tests.rl.plain_stamp")
def plain_stamp(key: str) -> None:
    """A plain Celery task: queue limits hold for it too."""
    stamp(key)


class NearSlotJob(Job):
    """Two runs per 0.6 s: a second run's slot is near enough to be waited for in the worker."""

    name = "tests.rl.near"
    queue = RL_QUEUE
    max_tries = 1
    rate_limits = [RateLimit(1, per=0.6)]

    def handle(self, key: str, **_: Any) -> int:
        stamp(key, attempt=self.attempt)
        return self.attempt
