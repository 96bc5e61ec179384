"""One Redis connection pool per process and URL."""

from __future__ import annotations

import os
from functools import lru_cache

import redis


@lru_cache(maxsize=8)
def _client(url: str, pid: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3)


def get_redis(url: str) -> redis.Redis:
    """A client for `url`, shared within this process and rebuilt after a fork."""
    return _client(url, os.getpid())


@lru_cache(maxsize=8)
def _quick_client(url: str, pid: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def get_quick_redis(url: str) -> redis.Redis:
    """A client that gives up after a second: for best-effort writes on a path that is
    answering an error already (Redis may be why), where waiting helps nobody."""
    return _quick_client(url, os.getpid())
