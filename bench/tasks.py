"""The benchmark's task module, loaded by workers through CELERIAC_TASK_MODULES=bench.tasks.

`bench.noop` does nothing, so a drain measures the per-message overhead only. The
`worker_ready` handler stores when the worker became ready, so the benchmark can start
its clock without turning on info-level logging (which would cost per task).
"""

from __future__ import annotations

import time
from typing import Any

from celery import signals

from app.celery_app import celery_app
from app.config import get_settings
from app.redis_client import get_redis

#: Redis key (in the benchmark's own database) holding a worker's ready time.
READY_KEY = "bench:ready:{hostname}"


@celery_app.task(name="bench.noop")
def noop(i: int = 0) -> None:
    """Does nothing."""
    return None


@signals.worker_ready.connect(weak=False)
def _note_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None) or "unknown"
    get_redis(get_settings().redis_url).set(READY_KEY.format(hostname=hostname), repr(time.time()))
