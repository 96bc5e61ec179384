"""Jobs under a concurrency limit, for tests (workers load them through CELERIAC_TASK_MODULES)."""

from __future__ import annotations

import json
import time
from typing import Any

from app.config import get_settings
from app.jobs import Job
from app.redis_client import get_redis


def spans_key(key: str) -> str:
    """Redis list of ["start" | "end", job id, epoch seconds] entries of SpanJob runs."""
    return f"tests:concurrency:spans:{key}"


class SpanJob(Job):
    """Records when it starts and ends; sleeps `seconds` on its first run only (`slow_once`)."""

    name = "tests.concurrency.span"
    max_tries = 1
    concurrency = 1
    concurrency_key = staticmethod(lambda payload: f"span:{payload['key']}")

    def handle(self, key: str, seconds: float = 0.2, slow_once: float = 0, **_: Any) -> int:
        client = get_redis(get_settings().redis_url)
        runs = int(client.incr(f"{spans_key(key)}:runs:{self.job_id}"))
        client.rpush(spans_key(key), json.dumps(["start", self.job_id, time.time()]))
        time.sleep(slow_once if slow_once and runs == 1 else seconds)
        client.rpush(spans_key(key), json.dumps(["end", self.job_id, time.time()]))
        return self.attempt


def spans(key: str) -> list[tuple[str, float, float]]:
    """(job id, start, end) of every finished run, by start."""
    client = get_redis(get_settings().redis_url)
    starts: dict[str, float] = {}
    done: list[tuple[str, float, float]] = []
    for raw in client.lrange(spans_key(key), 0, -1):
        kind, job_id, at = json.loads(raw)
        if kind == "start":
            starts[job_id] = at
        elif job_id in starts:
            done.append((job_id, starts.pop(job_id), at))
    return sorted(done, key=lambda span: span[1])
