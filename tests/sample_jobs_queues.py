"""A job that notes which queue each take came from, in order (weighted consumption tests)."""

from __future__ import annotations

import time
from typing import Any

from app.config import get_settings
from app.jobs import Job
from app.redis_client import get_redis


class NoteTake(Job):
    """Appends "<queue> <epoch seconds>" to the Redis list `key`, then sleeps `seconds`."""

    name = "tests.note_take"
    max_tries = 1

    def handle(self, key: str, queue: str, seconds: float = 0, **_: Any) -> None:
        get_redis(get_settings().redis_url).rpush(key, f"{queue} {time.time():.3f}")
        time.sleep(float(seconds))
