"""The paused-queue registry: one Redis hash every worker and web process reads.

A pause lives here, not in any worker, so it survives worker restarts and reaches workers
started later (app.control.worker_side re-reads it every few seconds). Resuming keeps the
entry with `paused: false`, so the console can say who resumed a queue and when.
No Celery imports here.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from app import redis_keys


@dataclass(frozen=True)
class PauseState:
    """A queue's last pause or resume: who, when (epoch seconds), why."""

    queue: str
    paused: bool
    by: str
    at: float
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decode(queue: str, raw: bytes | str) -> PauseState | None:
    try:
        data = json.loads(raw)
        return PauseState(queue, bool(data["paused"]), str(data["by"]), float(data["at"]), data.get("reason"))
    except (ValueError, KeyError, TypeError):
        return None  # written by another version: not ours to interpret


def _set(redis: Any, state: PauseState) -> PauseState:
    body = {"paused": state.paused, "by": state.by, "at": state.at, "reason": state.reason}
    redis.hset(redis_keys.QUEUE_PAUSES, state.queue, json.dumps(body))
    return state


def pause(redis: Any, queue: str, by: str, reason: str | None = None, now: float | None = None) -> PauseState:
    """Mark `queue` paused (idempotent: pausing again records the new who / when / why)."""
    return _set(redis, PauseState(queue, True, by, time.time() if now is None else now, reason))


def resume(redis: Any, queue: str, by: str, reason: str | None = None, now: float | None = None) -> PauseState:
    return _set(redis, PauseState(queue, False, by, time.time() if now is None else now, reason))


def all_states(redis: Any) -> dict[str, PauseState]:
    """Every queue ever paused, paused now or not, by name."""
    states: dict[str, PauseState] = {}
    for field, raw in (redis.hgetall(redis_keys.QUEUE_PAUSES) or {}).items():
        name = field.decode() if isinstance(field, bytes) else str(field)
        state = _decode(name, raw)
        if state is not None:
            states[name] = state
    return states


def paused_queues(redis: Any) -> set[str]:
    return {name for name, state in all_states(redis).items() if state.paused}


def state_of(redis: Any, queue: str) -> PauseState | None:
    raw = redis.hget(redis_keys.QUEUE_PAUSES, queue)
    return _decode(queue, raw) if raw is not None else None


def is_paused(redis: Any, queue: str) -> bool:
    state = state_of(redis, queue)
    return state is not None and state.paused
