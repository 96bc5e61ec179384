"""Exactly-once ticks: a SET NX claim per (schedule, tick) in Redis (S4).

RedBeat's lock keeps a second beat idle; the claim is the second guard, for the moments
two processes fire the same entry anyway (a beat that stalled past its lock, a fire
retried after an error, `run_scheduled_jobs` called beside a running beat).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import redis

from app import redis_keys


def claim_ticks(client: redis.Redis, schedule_id: str, ticks: Sequence[datetime]) -> list[datetime]:
    """The ticks this caller won, in one round trip; every other caller gets the rest."""
    if not ticks:
        return []
    pipe = client.pipeline(transaction=False)
    for tick in ticks:
        pipe.set(
            redis_keys.schedule_claim(schedule_id, int(tick.timestamp())),
            "1",
            nx=True,
            ex=redis_keys.SCHEDULE_CLAIM_TTL_S,
        )
    won = pipe.execute()
    return [tick for tick, ok in zip(ticks, won, strict=True) if ok]


def release_ticks(client: redis.Redis, schedule_id: str, ticks: Sequence[datetime]) -> None:
    """Give ticks back after a fire failed before dispatching, so a retry can take them."""
    if ticks:
        client.delete(*(redis_keys.schedule_claim(schedule_id, int(t.timestamp())) for t in ticks))
