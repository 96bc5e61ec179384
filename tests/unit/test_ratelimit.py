"""The rate limiter (J10) against the real test Redis: windows, reservations, keys, queue limits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app.config import load_settings
from app.errors import ValidationError
from app.ratelimit import RateLimit, RateLimitKeyError, queue_limits
from app.ratelimit.gate import class_limits, counters
from app.ratelimit.limits import Limiter
from tests.conftest import wait_for

pytestmark = [pytest.mark.redis]


@pytest.fixture()
def limiter(redis_client: redis.Redis) -> Limiter:
    return Limiter(redis_client)


def in_window(client: redis.Redis, key: str) -> int:
    """Admissions counted at this moment (reservations for later excluded)."""
    seconds, micros = client.time()
    return int(client.zcount(key, "-inf", seconds * 1_000_000 + micros))


def test_window_admits_the_limit_then_reserves_slots_in_order(limiter: Limiter, unique: str) -> None:
    per_us = 1_000_000
    keys = [(f"t:{unique}", 3, per_us)]
    assert all(limiter.acquire(f"m{i}", keys).admitted for i in range(3))
    fourth = limiter.acquire("m3", keys)
    fifth = limiter.acquire("m4", keys)
    assert not fourth.admitted and not fifth.admitted
    assert 0 < fourth.wait_s <= 1.0
    assert fourth.until < fifth.until, "waiting jobs keep their order"
    # Asking again before the slot neither admits nor reserves a second slot.
    again = limiter.acquire("m3", keys)
    assert not again.admitted and again.until == fourth.until
    admitted = wait_for(lambda: limiter.acquire("m3", keys).admitted, timeout=3, what="the reserved slot")
    assert admitted


def test_reservations_never_put_more_than_the_limit_in_any_window(
    limiter: Limiter, redis_client: redis.Redis, unique: str
) -> None:
    key = f"t:{unique}"
    decisions = [limiter.acquire(f"m{i}", [(key, 2, 1_000_000)]) for i in range(7)]
    slots = sorted(d.until for d in decisions)
    for i, start in enumerate(slots):
        assert sum(1 for s in slots[i:] if s < start + 1.0) <= 2, slots
    assert sum(d.admitted for d in decisions) == 2


def test_several_limits_are_all_or_nothing(limiter: Limiter, redis_client: redis.Redis, unique: str) -> None:
    roomy, tight = f"roomy:{unique}", f"tight:{unique}"
    both = [(roomy, 5, 1_000_000), (tight, 1, 60_000_000)]
    assert limiter.acquire("first", both).admitted
    second = limiter.acquire("second", both)
    assert not second.admitted and second.wait_s > 50
    # The refused job took nothing from the roomy limit's current window...
    assert in_window(redis_client, roomy) == 1
    # ...so another job under that limit alone still runs now.
    assert limiter.acquire("other", [(roomy, 5, 1_000_000)]).admitted
    assert in_window(redis_client, roomy) == 2


def test_key_template_is_filled_from_the_payload_and_scoped_per_class() -> None:
    per_user = RateLimit(10, per=60, key="user:{user_id}")
    a = per_user.redis_key("emails.send", {"user_id": 7})
    assert "emails.send" in a and "user:7" in a
    assert a != per_user.redis_key("emails.send", {"user_id": 8})
    assert a != per_user.redis_key("reports.build", {"user_id": 7}), "scoped per job class"
    shared = RateLimit(10, per=60, key="global:user:{user_id}")
    assert shared.redis_key("emails.send", {"user_id": 7}) == shared.redis_key("reports.build", {"user_id": 7})
    whole_class = RateLimit(100, per=3600)
    assert whole_class.redis_key("emails.send", {"x": 1}) == whole_class.redis_key("emails.send", {"x": 2})


def test_per_user_counters_are_independent(limiter: Limiter, unique: str) -> None:
    limits = (RateLimit(1, per=60, key="user:{user_id}"),)
    job = f"tests.{unique}"
    assert limiter.acquire("a", counters(job, limits, None, {"user_id": 1})).admitted
    assert limiter.acquire("b", counters(job, limits, None, {"user_id": 2})).admitted
    assert not limiter.acquire("c", counters(job, limits, None, {"user_id": 1})).admitted


def test_missing_payload_field_is_a_clear_error() -> None:
    limit = RateLimit(1, per=1, key="user:{user_id}")
    with pytest.raises(RateLimitKeyError) as caught:
        limit.redis_key("emails.send", {"account": 3})
    message = str(caught.value)
    assert "user:{user_id}" in message and "emails.send" in message and "user_id" in message
    assert "account" in message, "says what the payload has"


@pytest.mark.parametrize("template", ["user:{}", "user:{0}", "user:{user_id", "user:}"])
def test_malformed_key_template_is_refused_when_the_class_is_defined(template: str) -> None:
    with pytest.raises(RateLimitKeyError):
        RateLimit(1, per=1, key=template)


@pytest.mark.parametrize(("limit", "per"), [(0, 1), (-1, 1), (1.5, 1), (True, 1), (1, 0), (1, -3)])
def test_bad_limit_or_window_is_refused(limit: Any, per: Any) -> None:
    with pytest.raises(ValueError):
        RateLimit(limit, per=per)


def test_rate_limits_must_be_rate_limit_objects() -> None:
    class Odd:
        __name__ = "Odd"
        rate_limits = [(10, 60)]
        middleware = ()

    with pytest.raises(TypeError, match="RateLimit"):
        class_limits(Odd)


def test_throttle_middleware_counts_as_a_class_limit() -> None:
    from tests.sample_jobs_ratelimit import CappedJob, LimitedJob

    assert class_limits(CappedJob) == (RateLimit(5, per=2),)
    assert class_limits(LimitedJob) == (RateLimit(1, per=3),)


# -- queue limits: configuration, API-set, cache ----------------------------------------


@pytest.fixture()
def clean_queue_limits(redis_client: redis.Redis) -> Iterator[None]:
    from app import redis_keys

    redis_client.delete(redis_keys.RATE_LIMIT_QUEUES)
    queue_limits.forget_cache()
    yield
    redis_client.delete(redis_keys.RATE_LIMIT_QUEUES)
    queue_limits.forget_cache()


def test_api_limit_overrides_config_and_deleting_restores_it(
    redis_client: redis.Redis, clean_queue_limits: None
) -> None:
    settings = load_settings({"CELERIAC_QUEUE_RATE_LIMITS": "emails=100/60, reports=10/3600"})
    assert queue_limits.get_limit(redis_client, settings, "emails") == queue_limits.QueueLimit(
        "emails", 100, 60, "config"
    )
    queue_limits.set_limit(redis_client, "emails", 5, 1)
    assert queue_limits.get_limit(redis_client, settings, "emails") == queue_limits.QueueLimit("emails", 5, 1, "api")
    assert queue_limits.clear_limit(redis_client, "emails")
    assert queue_limits.get_limit(redis_client, settings, "emails").source == "config"  # type: ignore[union-attr]
    assert queue_limits.get_limit(redis_client, settings, "other") is None


@pytest.mark.parametrize(("limit", "per"), [(0, 1), (1, 0), ("5", 1), (1.5, 1), (True, 1), (None, 1), (2_000_000, 1)])
def test_set_limit_refuses_bad_values(redis_client: redis.Redis, limit: Any, per: Any) -> None:
    with pytest.raises(ValidationError):
        queue_limits.set_limit(redis_client, "emails", limit, per)


def test_config_refuses_malformed_queue_limits() -> None:
    with pytest.raises(ValueError, match="queue=limit/seconds"):
        load_settings({"CELERIAC_QUEUE_RATE_LIMITS": "emails=100"})


def test_worker_cache_sees_an_api_change_after_refresh(redis_client: redis.Redis, clean_queue_limits: None) -> None:
    assert queue_limits.cached_limit("cached-q") is None
    queue_limits.set_limit(redis_client, "cached-q", 3, 10)
    assert queue_limits.cached_limit("cached-q") is None, "served from the process cache"
    queue_limits.forget_cache()
    assert queue_limits.cached_limit("cached-q") == queue_limits.QueueLimit("cached-q", 3, 10, "api")
