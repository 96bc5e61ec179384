"""Every limit with its live usage (`GET /api/limits`, the Queues page), and runtime edits of
concurrency limits (`PUT /api/limits/concurrency/{key}`).

Rate limits (per queue, per job class) hold for every tenant, like the queues themselves:
every token sees them all. Concurrency keys belong to one tenant (app.kernel.concurrency_claims):
each tenant sees and edits only its own. No Flask here; callers audit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import redis

from app import redis_keys
from app.broker import celery_app
from app.config import Settings
from app.kernel.concurrency_claims import check_key, check_limit
from app.ratelimit.gate import class_limits
from app.ratelimit.queue_limits import load_all
from celeriac.concurrency import Slots, publish_parked, scoped_key, split_key

logger = logging.getLogger(__name__)


def _used(client: redis.Redis, key: str, per_us: int) -> int:
    """Admissions in the last window (reservations for later slots not counted)."""
    seconds, micros = client.time()
    now_us = int(seconds) * 1_000_000 + int(micros)
    return int(client.zcount(key, now_us - per_us, now_us))


def rate_limits(client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """Queue limits (configured or set through the API) and job classes' own `rate_limits`."""
    found: list[dict[str, Any]] = []
    for queue, on_queue in sorted(load_all(client, settings).items()):
        per_us = on_queue.per * 1_000_000
        found.append(
            {"scope": "queue", "name": queue, "key": None, "limit": on_queue.limit, "per": on_queue.per,
             "source": on_queue.source, "used": _used(client, redis_keys.rate_limit_queue(queue, per_us), per_us)}
        )
    for name in sorted(celery_app.tasks):
        job_cls = getattr(celery_app.tasks[name], "celeriac_job", None)
        try:
            limits = class_limits(job_cls)
        except TypeError:  # a malformed declaration fails the job itself; not shown here
            continue
        for declared in limits:
            used = None
            if declared.key is None:  # one counter for the class; keyed ones have one per value
                used = _used(client, redis_keys.rate_limit_job(name, None, declared.per_us), declared.per_us)
            found.append(
                {"scope": "job_class", "name": name, "key": declared.key, "limit": declared.limit,
                 "per": declared.per, "source": "code", "used": used}
            )
    return found


def _view(tenant_id: str | None, usage: Iterable[Any]) -> list[dict[str, Any]]:
    views = []
    for u in usage:
        tenant, key = split_key(u.key)
        if tenant_id is None or tenant == tenant_id:
            limit = u.limit if u.limit is not None else 1
            views.append({"key": key, "tenant": tenant, "limit": limit, "running": u.running, "waiting": u.waiting})
    return views


def concurrency_limits(client: redis.Redis, tenant_id: str | None) -> list[dict[str, Any]]:
    """The tenant's keys (None: every tenant's) with a limit, holders or waiters: their limit,
    running and waiting jobs now."""
    slots = Slots(client)
    prefix = scoped_key(tenant_id, "") if tenant_id is not None else ""
    keys = [key for key in slots.known_keys() if key.startswith(prefix)]
    return _view(tenant_id, slots.usage(keys))


def concurrency_limit(client: redis.Redis, tenant_id: str, key: str) -> dict[str, Any]:
    """One key's figures (a key never used answers limit 1, nothing running or waiting).

    Raises:
        ValidationError: the key is not 1-200 characters of text.
    """
    check_key(key, "key")
    [view] = _view(tenant_id, Slots(client).usage([scoped_key(tenant_id, key)]))
    return view


def set_concurrency_limit(
    client: redis.Redis, settings: Settings, tenant_id: str, key: str, limit: Any
) -> dict[str, Any]:
    """Make `limit` the key's limit now; a raised limit starts waiting jobs at once.

    It holds until changed again here or by a dispatch that names `concurrency_limit`.

    Raises:
        ValidationError: the key is not 1-200 characters of text, or the limit is not an
            integer from 1 to 100,000.
        redis.RedisError: Redis is unavailable (nothing changed).
    """
    check_key(key, "key")
    check_limit(limit, "limit")
    promoted = Slots(client).set_limit(
        scoped_key(tenant_id, key), limit, lease_s=float(settings.monitoring.reap_after_s)
    )
    publish_promoted(promoted)
    return concurrency_limit(client, tenant_id, key)


def publish_promoted(messages: list[str]) -> int:
    if not messages:
        return 0
    try:
        return publish_parked(celery_app, messages)
    except Exception:  # the waiters hold their slots until the lease ends; the reconciler republishes them
        logger.exception("Concurrency: %d promoted waiter(s) not published", len(messages))
        return 0


def all_limits(client: redis.Redis, settings: Settings, tenant_id: str | None) -> dict[str, Any]:
    """`GET /api/limits`: rate limits (every tenant's) and the tenant's concurrency limits."""
    return {
        "rate_limits": rate_limits(client, settings),
        "concurrency_limits": concurrency_limits(client, tenant_id),
    }
