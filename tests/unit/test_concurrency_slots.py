"""Concurrency slots (celeriac.concurrency) against real Redis: take, park, release, expire."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from celeriac.concurrency import ACTIVE_KEYS, LIMITS, Slots, holders_key, waiting_key
from tests.conftest import wait_for


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    """A Redis of this module's own: the session's recorder (integration tests) sweeps every
    concurrency key of the shared test database, and would promote these tests' waiters."""
    from app.embedded_redis import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("slots-redis"), persist=False)
    try:
        yield redis.Redis.from_url(server.url)
    finally:
        server.stop()


@pytest.fixture()
def slots(own_redis: redis.Redis, unique: str) -> Iterator[Slots]:
    yield Slots(own_redis)


def _message(job_id: str) -> str:
    return json.dumps({"task": "demo.echo", "args": [], "kwargs": {}, "options": {"task_id": job_id}})


def _redis_now(slots: Slots) -> float:
    """Redis's clock, which the leases use."""
    seconds, micros = slots.redis.time()
    return float(seconds) + micros / 1e6


def _ids(messages: list[str]) -> list[str]:
    return [json.loads(m)["options"]["task_id"] for m in messages]


def _take(slots: Slots, key: str, job_id: str, limit: int = 1, lease_s: float = 30) -> tuple[str, list[str]]:
    status, promoted = slots.acquire(key, job_id, limit=limit, lease_s=lease_s, message=None)
    if status == "need":
        status, more = slots.acquire(key, job_id, limit=limit, lease_s=lease_s, message=_message(job_id))
        promoted += more
    return status, promoted


def test_slots_admit_up_to_the_limit_then_park_in_arrival_order(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    assert _take(slots, key, "a", limit=2) == ("run", [])
    assert _take(slots, key, "b", limit=2) == ("run", [])
    assert _take(slots, key, "c", limit=2) == ("parked", [])
    assert _take(slots, key, "d", limit=2) == ("parked", [])
    [usage] = slots.usage([key])
    assert (usage.limit, usage.running, usage.waiting) == (2, 2, 2)
    # The first waiter gets the freed slot at once, before its message is published again.
    assert _ids(slots.release(key, "a", lease_s=30)) == ["c"]
    assert slots.waiting_ids() >= {"b", "c", "d"}
    # Arriving, the promoted waiter finds its slot taken for it.
    assert _take(slots, key, "c", limit=2) == ("run", [])
    assert _ids(slots.release(key, "b", lease_s=30)) == ["d"]
    assert slots.release(key, "c", lease_s=30) == []
    assert slots.release(key, "d", lease_s=30) == []
    [usage] = slots.usage([key])
    assert (usage.running, usage.waiting) == (0, 0)
    assert key.encode() not in slots.redis.smembers(ACTIVE_KEYS)  # type: ignore[operator]


def test_a_parked_job_delivered_again_keeps_its_place_and_is_not_published_twice(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    _take(slots, key, "holder")
    assert _take(slots, key, "w1") == ("parked", [])
    assert _take(slots, key, "w2") == ("parked", [])
    assert _take(slots, key, "w1") == ("parked", [])  # a redelivery does not move it back
    assert [m.decode() for m in slots.redis.zrange(waiting_key(key), 0, -1)] == ["w1", "w2"]  # type: ignore[union-attr]
    # The holder's slot frees while w1 is being delivered again: w1 runs on this delivery,
    # and its parked copy does not go out as well.
    slots.redis.zadd(holders_key(key), {"holder": 1})  # lease long past
    assert _take(slots, key, "w1") == ("run", [])
    [usage] = slots.usage([key])
    assert (usage.running, usage.waiting) == (1, 1)


def test_releasing_a_job_that_holds_no_slot_changes_nothing(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    _take(slots, key, "a")
    _take(slots, key, "b")
    assert slots.release(key, "b", lease_s=30) == []  # b is parked, not a holder
    [usage] = slots.usage([key])
    assert (usage.running, usage.waiting) == (1, 1)


def test_an_expired_holder_is_removed_by_the_next_acquire_and_its_waiter_promoted(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    taken = _redis_now(slots)
    assert _take(slots, key, "dead", lease_s=0.3) == ("run", [])
    assert _take(slots, key, "waiter") == ("parked", [])
    assert _take(slots, key, "late") == ("parked", [])
    wait_for(lambda: _redis_now(slots) > taken + 0.4, timeout=5, what="the dead holder's lease to pass")
    status, promoted = _take(slots, key, "newcomer")
    # The waiter, not the newcomer, gets the freed slot.
    assert (status, _ids(promoted)) == ("parked", ["waiter"])


def test_the_sweep_frees_expired_slots_and_promotes_waiters(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    _take(slots, key, "dead", lease_s=0.2)
    _take(slots, key, "waiter")
    promoted = wait_for(lambda: slots.sweep(lease_s=30), timeout=5, what="lease expiry")
    assert _ids(promoted) == ["waiter"]
    assert slots.sweep(lease_s=30) == []


def test_refresh_keeps_a_running_holder_past_its_first_lease(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    _take(slots, key, "busy", lease_s=0.5)
    _take(slots, key, "waiter")
    slots.refresh([("busy", key)], lease_s=30)
    taken = _redis_now(slots)
    wait_for(lambda: _redis_now(slots) > taken + 0.6, timeout=5, what="the first lease to pass")
    assert slots.sweep(lease_s=30) == []
    [usage] = slots.usage([key])
    assert (usage.running, usage.waiting) == (1, 1)
    # A refresh never brings back a holder that is gone.
    slots.release(key, "busy", lease_s=30)
    slots.refresh([("busy", key)], lease_s=30)
    assert slots.redis.zscore(holders_key(key), "busy") is None


def test_the_most_recent_limit_wins_and_raising_it_promotes_waiters(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    _take(slots, key, "a", limit=1)
    _take(slots, key, "b", limit=1)
    _take(slots, key, "c", limit=1)
    assert _ids(slots.set_limit(key, 3, lease_s=30)) == ["b", "c"]
    assert slots.limit(key) == 3
    slots.set_limit(key, 1, lease_s=30)
    # Lowered: running jobs finish; new ones wait until fewer than the limit run.
    assert _take(slots, key, "d", limit=5) == ("parked", [])
    assert slots.limit(key) == 1  # a message's limit does not replace the key's
    slots.set_limit_if_unset(key, 7)
    assert slots.limit(key) == 1


def test_a_key_whose_limit_was_lost_takes_the_limit_its_message_carries(slots: Slots, unique: str) -> None:
    key = f"t:{unique}"
    slots.redis.hdel(LIMITS, key)
    assert _take(slots, key, "a", limit=2) == ("run", [])
    assert slots.limit(key) == 2
