"""A dispatch's concurrency claim: which key it runs under and the limit it names.

Computed once, at dispatch (the worker reads it from the `celeriac` header and needs no
SQL): from the dispatch's own `concurrency_key` / `concurrency_limit`, else the job
class's `concurrency_key` (a string, or a function of the payload) and `concurrency`.
A key belongs to the dispatching tenant (one tenant's jobs never wait for another's).
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from app.errors import ValidationError
from celeriac.concurrency import LIMITS, MAX_KEY_CHARS, MAX_LIMIT, scoped_key, split_key

logger = logging.getLogger(__name__)


def check_key(key: Any, name: str = "concurrency_key") -> str:
    """Raises ValidationError unless `key` is 1-200 characters of text without NUL."""
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS:
        raise ValidationError(f"{name} must be a string of 1 to {MAX_KEY_CHARS} characters")
    if "\x00" in key or not key.strip():
        raise ValidationError(f"{name} must be visible text without NUL characters")
    return key


def check_limit(limit: Any, name: str = "concurrency_limit") -> int:
    """Raises ValidationError unless `limit` is an integer from 1 to MAX_LIMIT."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"{name} must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def _class_key(declared: Any, payload: dict[str, Any], job_class: str) -> str | None:
    if declared is None:
        return None
    if callable(declared):
        try:
            declared = declared(payload)
        except Exception as exc:  # the job's own code: a clear 422, not a 500
            raise ValidationError(f"{job_class}.concurrency_key raised {type(exc).__name__}: {exc}") from exc
    return check_key(declared if isinstance(declared, str) else str(declared), f"{job_class}.concurrency_key")


def resolve_claim(
    spec_key: str | None,
    spec_limit: int | None,
    class_key: Any,
    class_limit: int | None,
    *,
    job_class: str,
    tenant_id: str,
    payload: dict[str, Any],
    lease_s: float,
) -> dict[str, Any] | None:
    """The header value `{"key": "<tenant>:<key>", "limit": n, "lease": s}`, or None.

    A limit without a key limits the job class itself (key = the class name), as
    Laravel's WithoutOverlapping does. No limit anywhere: the key's current one (1 if none).

    Raises:
        ValidationError: a key or limit out of range, or the class's key function failed.
    """
    if spec_limit is not None:
        check_limit(spec_limit)
    if spec_key is not None:
        check_key(spec_key)
    key = spec_key or _class_key(class_key, payload, job_class)
    limit = spec_limit if spec_limit is not None else class_limit
    if key is None and limit is None:
        return None
    return {"key": scoped_key(tenant_id, key or job_class), "limit": limit or 1, "lease": lease_s}


def user_key(claim: dict[str, Any] | None) -> str | None:
    """The key as the dispatch named it (the row's `concurrency_key`), without the tenant."""
    return split_key(claim["key"])[1] if claim else None


def record_limit(client: redis.Redis, claim: dict[str, Any], explicit: bool) -> None:
    """Make the dispatch's limit the key's: a named one wins (the latest dispatch sets it), a
    class default only fills a key with none. Workers fall back on the header if this is lost."""
    try:
        if explicit:
            client.hset(LIMITS, claim["key"], int(claim["limit"]))
        else:
            client.hsetnx(LIMITS, claim["key"], int(claim["limit"]))
    except redis.RedisError as exc:
        logger.warning("Concurrency limit of %s not recorded (%s); workers use the message's", claim["key"], exc)
