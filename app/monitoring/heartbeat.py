"""The worker side of the registry (M2), with Celeriac's settings.

The thread itself is celeriac.heartbeat's, the one a project's instrumented workers run
too (`celeriac.instrument`): one heartbeat format for the workers page and the
reconciler, whoever started the worker. It only reads counters Celery already keeps and
writes one Redis key per beat, off the consumer's thread: a slow Redis delays heartbeats,
never acks (CELERY-NOTES.md).
"""

from __future__ import annotations

from app.config import get_settings
from app.redis_client import get_redis
from celeriac import heartbeat


def connect() -> None:
    """Beat every CELERIAC_WORKER_HEARTBEAT_S in this process's worker (0: never)."""
    settings = get_settings()
    interval_s = settings.monitoring.heartbeat_interval_s
    if interval_s <= 0:
        return
    url = settings.redis_url
    heartbeat.connect(lambda: get_redis(url), interval_s, settings.monitoring.forget_after_s)
