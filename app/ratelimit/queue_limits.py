"""Per-queue global limits: from CELERIAC_QUEUE_RATE_LIMITS, overridden through the API.

API-set limits live in one Redis hash so every worker sees them. Workers read through a
short in-process cache (`cached_limit`), so a task on a queue without a limit costs a dict
lookup, not a Redis round trip; a change through the API reaches every worker within
CACHE_TTL_S. Deleting an API limit lets the configured one (if any) apply again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

from app import redis_keys
from app.config import Settings, get_settings
from app.errors import ValidationError
from app.kernel.queue_defaults import code_rate_limits
from app.redis_client import get_redis

logger = logging.getLogger(__name__)

#: Seconds a worker keeps its copy of the queue limits.
CACHE_TTL_S = 2.0
#: Bounds accepted through the API: a larger log per queue would cost Redis memory for little.
MAX_LIMIT = 1_000_000
MAX_PER_S = 7 * 24 * 3600


@dataclass(frozen=True)
class QueueLimit:
    """At most `limit` jobs of `queue` start in any `per` seconds, across all workers."""

    queue: str
    limit: int
    per: int
    #: "code" (define_queue), "config" (environment, wins over code) or "api" (set by an
    #: admin; wins over both).
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"queue": self.queue, "limit": self.limit, "per": self.per, "source": self.source}


def empty(queue: str) -> dict[str, Any]:
    """The API shape of a queue with no limit."""
    return {"queue": queue, "limit": None, "per": None, "source": None}


def check_queue_name(queue: str) -> None:
    """Raises ValidationError unless `queue` is 1-100 letters, digits, '.', '_' or '-'."""
    if not (0 < len(queue) <= 100 and all(ch.isalnum() or ch in "._-" for ch in queue)):
        raise ValidationError("queue must be 1-100 characters of letters, digits, '.', '_' or '-'")


def _check_int(value: Any, name: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= maximum:
        raise ValidationError(f"{name} must be from 1 to {maximum}, got {value}")
    return value


def _parse(queue: str, raw: bytes | str) -> QueueLimit | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        limit, per = (int(part) for part in text.split("/", 1))
    except ValueError:
        logger.warning("Ignoring malformed queue rate limit %r for %s", text, queue)
        return None
    return QueueLimit(queue, limit, per, "api")


def load_all(client: redis.Redis, settings: Settings) -> dict[str, QueueLimit]:
    """Every queue's effective limit: `define_queue` in code, then configured ones, then API-set ones."""
    limits = {queue: QueueLimit(queue, limit, per, "code") for queue, (limit, per) in code_rate_limits().items()}
    limits.update(
        (queue, QueueLimit(queue, limit, per, "config")) for queue, limit, per in settings.queue_rate_limits
    )
    stored = cast(dict[bytes, bytes], client.hgetall(redis_keys.RATE_LIMIT_QUEUES))
    for field, raw in stored.items():
        queue = field.decode()
        parsed = _parse(queue, raw)
        if parsed is not None:
            limits[queue] = parsed
    return limits


def get_limit(client: redis.Redis, settings: Settings, queue: str) -> QueueLimit | None:
    """The limit of `queue` now (read from Redis, not cached)."""
    check_queue_name(queue)
    return load_all(client, settings).get(queue)


def set_limit(client: redis.Redis, queue: str, limit: Any, per: Any) -> QueueLimit:
    """Set `queue`'s limit through the API.

    Raises:
        ValidationError: a bad queue name, or limit / per not integers in range.
    """
    check_queue_name(queue)
    limit = _check_int(limit, "limit", MAX_LIMIT)
    per = _check_int(per, "per", MAX_PER_S)
    client.hset(redis_keys.RATE_LIMIT_QUEUES, queue, f"{limit}/{per}")
    return QueueLimit(queue, limit, per, "api")


def clear_limit(client: redis.Redis, queue: str) -> bool:
    """Remove `queue`'s API-set limit; True if there was one. A configured limit stays."""
    check_queue_name(queue)
    return bool(client.hdel(redis_keys.RATE_LIMIT_QUEUES, queue))


_cache: tuple[int, float, dict[str, QueueLimit]] | None = None


def cached_limit(queue: str) -> QueueLimit | None:
    """`queue`'s limit as this process last read it (at most CACHE_TTL_S old)."""
    global _cache
    now = time.monotonic()
    if _cache is None or _cache[0] != os.getpid() or now >= _cache[1]:
        settings = get_settings()
        try:
            limits = load_all(get_redis(settings.redis_url), settings)
        except redis.RedisError:
            if _cache is None:
                raise
            logger.warning("Cannot read queue rate limits; using the last known ones", exc_info=True)
            limits = _cache[2]
        _cache = (os.getpid(), now + CACHE_TTL_S, limits)
    return _cache[2].get(queue)


def forget_cache() -> None:
    """Drop this process's copy (tests, and after a change made in this process)."""
    global _cache
    _cache = None
