"""Diagnostic jobs of API.md (`demo.*`): fixed names, always registered.

Each accepts and ignores unknown payload keys (such as `previous_result` in a chain).
"""

from __future__ import annotations

import time
from typing import Any

from app import redis_keys
from app.celery_app import celery_app
from app.config import get_settings
from app.jobs import Job
from app.redis_client import get_redis

#: How long demo.flaky remembers a key's failures, in seconds.
FLAKY_TTL_S = 24 * 3600


class Echo(Job):
    """Returns `value`, or the previous step's result in a chain."""

    name = "demo.echo"
    max_tries = 1

    def handle(self, value: Any = None, previous_result: Any = None, **_: Any) -> Any:
        return previous_result if value is None else value


class Sleep(Job):
    """Sleeps `seconds`, returns them."""

    name = "demo.sleep"
    max_tries = 1

    def handle(self, seconds: float = 1, **_: Any) -> float:
        time.sleep(float(seconds))
        return seconds


class Fail(Job):
    """Always raises RuntimeError(message); no retries."""

    name = "demo.fail"
    max_tries = 1

    def handle(self, message: str = "demo failure", **_: Any) -> None:
        raise RuntimeError(message)


class Flaky(Job):
    """Raises on the first `failures` attempts for `key`, then returns "ok"."""

    name = "demo.flaky"
    max_tries = 5
    backoff = [1, 1, 2, 2]

    def handle(self, key: str = "default", failures: int = 1, **_: Any) -> str:
        counter = redis_keys.demo_flaky(key)
        client = get_redis(get_settings().redis_url)
        seen = int(client.incr(counter))
        client.expire(counter, FLAKY_TTL_S)
        if seen <= int(failures):
            raise RuntimeError(f"flaky {key!r}: failure {seen} of {failures}")
        return "ok"


class Progress(Job):
    """Sleeps `seconds` per step for `steps` steps, reporting progress after each; returns `steps`."""

    name = "demo.progress"
    max_tries = 1

    def handle(self, steps: int = 5, seconds: float = 0.5, **_: Any) -> int:
        steps, seconds = int(steps), float(seconds)
        if steps < 0 or seconds < 0:
            raise ValueError("demo.progress: steps and seconds must be >= 0")
        self.progress(0, steps, "starting")
        for step in range(1, steps + 1):
            time.sleep(seconds)
            self.progress(step, steps, f"step {step} of {steps}")
        return steps


@celery_app.task(name="demo.add")
def add(x: float = 0, y: float = 0, **_: Any) -> float:
    """A plain Celery task (not a Job class): returns x + y."""
    return x + y
