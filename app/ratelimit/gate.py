"""The prerun gate that enforces global rate limits before an attempt is counted (J10).

For each task about to run it gathers the job class's `rate_limits`, its `Throttle`
middleware and its queue's limit, and asks the limiter once (one Lua call for all of
them). Over a limit, the job is re-published as it came (same id, `retries`, queue,
priority, headers, links) with `"throttled": true` in its `celeriac` header and a
countdown to its reserved slot, a `throttle` event gives its row `throttled_until`, and
the gate returns True so the body is skipped. Retries are not consumed because
`retries` is unchanged and the recorder does not count a throttled re-publish.

A slot at most `CELERIAC_RATE_LIMIT_HOLD_MS` away (default 1000) is waited for in the
worker instead: the reservation is already this job's, and a re-queued message would
come back behind the queue's backlog, too late for it (the cap would hold, throughput not).

Tasks with no limit at all cost two attribute reads and a cached dict lookup.
Jobs run in-process (`dispatch_now`, `task.apply`) are not limited: there is no queue
to put them back on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from app import redis_keys
from app.config import get_settings
from app.crypto import REDACTED, is_sealed, open_payload
from app.ratelimit.limits import REFUSAL_ATTR, Decision, Limiter, RateLimit, RateLimitKeyError
from app.ratelimit.queue_limits import QueueLimit, cached_limit
from app.redis_client import get_redis
from celeriac import header, signals

logger = logging.getLogger(__name__)


def throttle_event(job_id: str, until: float) -> dict[str, Any]:
    """The `throttle` event: the recorder sets the row's `throttled_until` from `until`."""
    return {"t": "throttle", "id": job_id, "ts": time.time(), "eid": uuid.uuid4().hex, "until": until}


def class_limits(job_cls: Any) -> tuple[RateLimit, ...]:
    """`rate_limits` plus the limits of `Throttle` middleware, checked once per class.

    Raises:
        TypeError: an entry of `rate_limits` is not a `RateLimit`.
    """
    if job_cls is None:
        return ()
    return _class_limits(job_cls)


@lru_cache(maxsize=1024)
def _class_limits(job_cls: Any) -> tuple[RateLimit, ...]:
    limits = list(getattr(job_cls, "rate_limits", ()) or ())
    for entry in limits:
        if not isinstance(entry, RateLimit):
            raise TypeError(f"{job_cls.__name__}.rate_limits must hold RateLimit objects, got {entry!r}")
    for middleware in getattr(job_cls, "middleware", ()) or ():
        limit = getattr(middleware, "rate_limit", None)
        if isinstance(limit, RateLimit):
            limits.append(limit)
    return tuple(limits)


def _limiter() -> Limiter:
    return _limiter_for(get_settings().redis_url)


@lru_cache(maxsize=4)
def _limiter_for(url: str) -> Limiter:
    return Limiter(get_redis(url))


def _payload(limits: Sequence[RateLimit], kwargs: Any) -> Mapping[str, Any]:
    """The clear payload, opened only when a key template needs a field of a sealed one."""
    payload = kwargs if isinstance(kwargs, dict) else {}
    if is_sealed(payload) and any(limit.needs_payload for limit in limits):
        payload = open_payload(payload)
    return payload


def counters(
    task_name: str, limits: Sequence[RateLimit], queue_limit: QueueLimit | None, kwargs: Any
) -> list[tuple[str, int, int]]:
    """`(redis key, limit, per microseconds)` for every limit that applies to one job.

    Raises:
        RateLimitKeyError: a key template names a field the payload lacks.
    """

    payload = _payload(limits, kwargs)
    result = [(limit.redis_key(task_name, payload), limit.limit, limit.per_us) for limit in limits]
    if queue_limit is not None:
        per_us = queue_limit.per * 1_000_000
        result.append((redis_keys.rate_limit_queue(queue_limit.queue, per_us), queue_limit.limit, per_us))
    return result


def rate_gate(task_id: str, task: Any) -> bool:
    """Re-queue `task` if a global limit does not admit it now; True when it did so."""
    request = task.request
    if getattr(request, "is_eager", False):
        return False
    delivery = getattr(request, "delivery_info", None) or {}
    queue = delivery.get("routing_key")
    queue_limit = cached_limit(queue) if queue else None
    job_cls = getattr(task, "celeriac_job", None)
    try:
        limits = class_limits(job_cls)
        if not limits and queue_limit is None:
            return False
        keys = counters(task.name, limits, queue_limit, request.kwargs)
    except (RateLimitKeyError, TypeError) as exc:
        # A programming error in the job's limits: the job fails with it (see _run_job)
        # rather than running unlimited, which nobody would notice.
        setattr(request, REFUSAL_ATTR, exc)
        return False
    decision = _limiter().acquire(f"{task_id}:{int(request.retries or 0)}", keys)
    if decision.admitted:
        return False
    if decision.wait_s <= get_settings().rate_limit_hold_ms / 1000:
        # A slot this close is kept by waiting here, as Celery's own rate_limit does: a
        # re-queued message would come back late behind the queue's backlog and lose it.
        time.sleep(decision.wait_s)
        return False
    _requeue(task, request, decision)
    signals.emit(throttle_event(task_id, decision.until))
    logger.info("Job %s (%s) over its rate limit; re-queued for %.3fs", task_id, task.name, decision.wait_s)
    return True


def _requeue(task: Any, request: Any, decision: Decision) -> None:
    """Publish the same message again, due at the reserved slot, with the same retry count."""
    headers = dict(getattr(request, "headers", None) or {})
    celeriac = header.with_flags(header.read(request), throttled=True)
    headers[header.NAME] = celeriac
    # A far slot is reached in hops no longer than the longest broker ETA the visibility
    # timeout is sized for (CELERIAC_SCHEDULED_AFTER_S; an ETA past it would be delivered
    # twice); coming back early, the job finds its reservation and waits again.
    countdown = min(decision.wait_s, max(get_settings().scheduled_after_s, 1))
    options: dict[str, Any] = {"headers": headers, "countdown": countdown}
    if celeriac.get("encrypted"):
        options.update(argsrepr=REDACTED, kwargsrepr=REDACTED)
    task.signature_from_request(request, **options).apply_async()


def connect() -> None:
    """Run `rate_gate` before every job (app.celery_app.connect_worker calls it)."""
    signals.register_gate(rate_gate)
