"""Pause and resume a queue for every worker (W2); which queues exist.

Pausing writes the registry first, then broadcasts `cancel_consumer` so workers that are up
stop fetching at once; workers that miss the broadcast, or start later, read the registry
themselves (app.control.worker_side). Resuming sends `add_consumer` only to the workers that
consumed the queue before (their published control state), so a resume never makes a worker
take a queue it was not started for. No Flask here.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.control import pauses
from app.errors import NotFound
from app.kernel.ports import WorkerControl
from app.models import JobExecution
from app.monitoring.metrics import DEFAULT_QUEUES
from app.monitoring.queue_stats import broker_depth
from app.monitoring.workers import list_workers
from app.ratelimit import queue_limits

logger = logging.getLogger(__name__)

check_queue_name = queue_limits.check_queue_name


def control_states(redis: Any) -> dict[str, dict[str, Any]]:
    """Each worker's published control state (wanted queues, supervisor program), by hostname.

    Hostnames come from the heartbeat registry's index (no SCAN of the keyspace): a worker
    with heartbeats off is not listed, and only its own check thread follows a resume.
    """
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in redis.zrange(redis_keys.WORKERS, 0, -1)]
    states: dict[str, dict[str, Any]] = {}
    for raw in redis.mget([redis_keys.worker_control(n) for n in names]) if names else []:
        try:
            state = json.loads(raw) if raw is not None else None
        except ValueError:
            continue
        if isinstance(state, dict) and isinstance(state.get("hostname"), str):
            states[state["hostname"]] = state
    return states


def configured_queues(redis: Any, settings: Settings) -> set[str]:
    """Queues known without looking at jobs: standard, consumed by a worker, limited or paused."""
    names = set(DEFAULT_QUEUES)
    for worker in list_workers(redis, settings.monitoring):
        names.update(worker.heartbeat.queues)
    for state in control_states(redis).values():
        names.update(state.get("wanted") or [])
    names.update(queue_limits.load_all(redis, settings))
    names.update(pauses.all_states(redis))
    return names


def is_known(session: Session, redis: Any, settings: Settings, queue: str) -> bool:
    """A queue exists if it is configured (above), ever held a job, or has messages now."""
    if queue in configured_queues(redis, settings):
        return True
    used = session.scalar(select(JobExecution.id).where(JobExecution.queue == queue).limit(1))
    return used is not None or broker_depth(redis, queue) > 0


def _check_known(session: Session, redis: Any, settings: Settings, queue: str) -> None:
    check_queue_name(queue)
    if not is_known(session, redis, settings, queue):
        raise NotFound(f"no queue named {queue!r}: it is not consumed, configured or used by any job")


def pause_queue(
    session: Session,
    redis: Any,
    workers: WorkerControl,
    settings: Settings,
    queue: str,
    actor: str,
    reason: str | None = None,
) -> pauses.PauseState:
    """Pause `queue` everywhere: the registry, then a broadcast to the workers that are up.

    Raises:
        ValidationError: not a valid queue name.
        NotFound: no such queue.
    """
    _check_known(session, redis, settings, queue)
    state = pauses.pause(redis, queue, actor, reason)
    try:
        workers.cancel_consumer(queue)
    except Exception:  # the registry holds the pause; workers apply it within seconds anyway
        logger.exception("Broadcasting the pause of %s failed; workers apply it on their next check", queue)
    return state


def resume_queue(
    session: Session,
    redis: Any,
    workers: WorkerControl,
    settings: Settings,
    queue: str,
    actor: str,
    reason: str | None = None,
) -> pauses.PauseState:
    """Resume `queue`: the registry, then `add_consumer` to the workers that want it back.

    Raises:
        ValidationError: not a valid queue name.
        NotFound: no such queue.
    """
    _check_known(session, redis, settings, queue)
    state = pauses.resume(redis, queue, actor, reason)
    holders = sorted(h for h, s in control_states(redis).items() if queue in (s.get("wanted") or []))
    if holders:
        try:
            workers.add_consumer(queue, holders)
        except Exception:
            logger.exception("Broadcasting the resume of %s failed; workers apply it on their next check", queue)
    return state
