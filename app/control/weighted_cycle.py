"""Weighted consumption: the order a worker asks Redis for its queues (Sidekiq's weighted queues).

kombu's Redis transport asks its queue cycle for the queues to BRPOP before every fetch
(`Channel._brpop_start`: `cycle.consume(n)`), and BRPOP takes from the first non-empty one.
With `broker_transport_options["queue_order_strategy"]` naming `WeightedCycle` (by dotted
path, kombu's `cycle_by_name`), each fetch draws a fresh order at random, a queue coming
first with a chance proportional to its weight: weights 3 and 1 give the first queue about
three takes in four while both have jobs, and the light queue is never starved.

When no queue the worker consumes has a weight, the order stays the worker's -Q order
(kombu's "priority" strategy, what Celeriac used before). Weights come from the Redis
mirror the edit service writes (app.control.queue_settings; SQL is the truth) over the
ones `define_queue` declared in code, read at most every CACHE_TTL_S: a change reaches
every worker within seconds, without a restart, and never costs a SQL query per fetch.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast

import redis

from app import redis_keys
from app.config import get_settings
from app.kernel.queue_defaults import DEFAULT_WEIGHT, code_queues
from app.redis_client import get_redis

logger = logging.getLogger(__name__)

#: Seconds a worker keeps the weights it read (a change reaches it within this).
CACHE_TTL_S = 2.0

_cache: tuple[int, float, dict[str, int]] | None = None


def parse_weights(raw: dict[Any, Any]) -> dict[str, int]:
    """The mirror hash as {queue: weight}; malformed entries are skipped."""
    weights: dict[str, int] = {}
    for key, value in raw.items():
        name = key.decode() if isinstance(key, bytes) else str(key)
        try:
            weight = int(value)
        except (TypeError, ValueError):
            continue
        if weight >= 1:
            weights[name] = weight
    return weights


def load_weights(client: redis.Redis) -> dict[str, int]:
    """Weights in effect: `define_queue` in code, overridden by the admin-set mirror."""
    weights = {name: q.defaults.weight for name, q in code_queues().items() if q.defaults.weight is not None}
    weights.update(parse_weights(cast(dict[Any, Any], client.hgetall(redis_keys.QUEUE_WEIGHTS))))
    return weights


def current_weights() -> dict[str, int]:
    """The weights as this process last read them (at most CACHE_TTL_S old).

    Never raises: with Redis unreachable the last weights read stay in force (none at
    first: strict order), since the fetch that follows fails and retries anyway.
    """
    global _cache
    now = time.monotonic()
    if _cache is not None and _cache[0] == os.getpid() and now < _cache[1]:
        return _cache[2]
    try:
        weights = load_weights(get_redis(get_settings().redis_url))
    except redis.RedisError:
        weights = _cache[2] if _cache is not None else {}
        logger.warning("Cannot read queue weights; keeping %d known weight(s)", len(weights))
    _cache = (os.getpid(), now + CACHE_TTL_S, weights)
    return weights


def forget_weights() -> None:
    """Drop this process's copy (tests, and after a change made in this process)."""
    global _cache
    _cache = None


def weighted_order(queues: Sequence[str], weights: dict[str, int], rng: random.Random | None = None) -> list[str]:
    """`queues` in a random order where each comes next with a chance proportional to its
    weight (a queue without one counts DEFAULT_WEIGHT): weighted sampling without replacement.

    Efraimidis-Spirakis keys (u ** (1 / w), largest first) draw the whole order in one sort.
    """
    draw = (rng or random).random
    keyed = [(draw() ** (1.0 / weights.get(name, DEFAULT_WEIGHT)), name) for name in queues]
    keyed.sort(reverse=True)
    return [name for _key, name in keyed]


class WeightedCycle:
    """kombu queue cycle (the interface of kombu.utils.scheduling.round_robin_cycle):
    weighted random order when any consumed queue has a weight, else the given order."""

    def __init__(self, it: list[str] | None = None) -> None:
        self.items: list[str] = it if it is not None else []

    def update(self, it: Iterable[str]) -> None:
        """The queues the channel consumes now (after add_consumer / cancel_consumer)."""
        self.items[:] = it

    def consume(self, n: int) -> list[str]:
        queues = self.items[:n]
        if len(queues) < 2:
            return queues
        weights = current_weights()
        if not any(name in weights for name in queues):
            return queues
        return weighted_order(queues, weights)

    def rotate(self, last_used: str) -> None:
        """Each fetch draws a new order; nothing to rotate."""
