"""A worker's copy of the cancel marks: seen after a refresh, cleared marks forgotten."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from app import redis_keys
from app.backends.celery_canceller import CeleryCanceller
from celeriac.cancel_cache import CancelCache

pytestmark = pytest.mark.redis


class NoControl:
    def revoke(self, *_: Any, **__: Any) -> None:
        pass


def test_marks_are_seen_at_the_next_refresh_and_cleared_ones_forgotten(redis_client: Any) -> None:
    canceller = CeleryCanceller(redis_client, NoControl())
    cache = CancelCache(lambda: redis_client, refresh_s=0)
    job, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert cache.is_cancelled(job) is False
    canceller.mark_cancelled(job)
    assert cache.is_cancelled(job) is True and cache.is_cancelled(other) is False
    assert redis_client.exists(redis_keys.cancelled(job)) == 1
    canceller.clear_mark(job)
    assert cache.is_cancelled(job) is False


def test_within_the_window_the_copy_is_used_without_asking_redis(redis_client: Any) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        return redis_client

    cache = CancelCache(factory, refresh_s=3600)
    job = str(uuid.uuid4())
    for _ in range(50):
        cache.is_cancelled(job)
    assert len(calls) == 1


def test_redis_outage_keeps_the_last_copy(redis_client: Any) -> None:
    canceller = CeleryCanceller(redis_client, NoControl())
    job = str(uuid.uuid4())
    canceller.mark_cancelled(job)
    broken = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    clients = [redis_client]
    cache = CancelCache(lambda: clients[-1], refresh_s=0)
    assert cache.is_cancelled(job) is True
    clients.append(broken)
    assert cache.is_cancelled(job) is True, "an outage does not forget a cancel"
