"""Which jobs are cancelled, as a worker process knows it without asking Redis per task.

Cancel marks (`CeleryCanceller.mark_cancelled`) go into one sorted set and bump a version
counter. A process re-reads the set only when the version moved, and looks at the
version at most every `refresh_s`: one round trip per 100 ms instead of one per task.

Why that window is safe: a cancel also broadcasts a revoke with terminate, which Celery
applies at once in every worker that is up (it discards the message or kills the run);
the marks are for workers that were down when it was broadcast, and a process reads the
marks before its first task.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import redis

from celeriac import keys as redis_keys

logger = logging.getLogger(__name__)

#: Longest time a process trusts its copy of the cancel marks, in seconds.
REFRESH_S = 0.1


class CancelCache:
    def __init__(self, client_factory: Callable[[], redis.Redis], refresh_s: float = REFRESH_S) -> None:
        self._client_factory = client_factory
        self._refresh_s = refresh_s
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._ids: frozenset[str] = frozenset()
        self._version: Any = None
        self._next_check = 0.0

    def is_cancelled(self, job_id: str) -> bool:
        if os.getpid() != self._pid:
            self._reset()  # a forked child re-reads: the parent's copy may be old
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._refresh_s
            try:
                self._refresh()
            except redis.RedisError as exc:  # keep the last copy; the revoke still applies
                logger.warning("Cancel marks not refreshed (%s); using the copy from before", exc)
        return job_id in self._ids

    def _refresh(self) -> None:
        client = self._client_factory()
        version = client.get(redis_keys.CANCELLED_VERSION)
        if version == self._version and self._version is not None:
            return
        members: list[bytes] = client.zrange(redis_keys.CANCELLED_RECENT, 0, -1)  # type: ignore[assignment]
        self._ids = frozenset(member.decode() for member in members)
        self._version = version if version is not None else b"0"
