"""The hub's Lua scripts against a real Redis: counted once, claimed once, nothing lost."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from app import redis_keys
from app.composition.followups import drain_outbox, follow_up, involved, recover_inflight
from app.composition.hub import Hub, new_id, payload_identity
from app.composition.specs import from_spec, to_spec
from app.kernel.dispatching import ResolvedJob
from app.kernel.row_batch import Finished

pytestmark = pytest.mark.redis


@pytest.fixture()
def hub(redis_client: Any) -> Any:
    redis_client.delete(redis_keys.OUTBOX, redis_keys.OUTBOX_INFLIGHT)
    yield Hub(redis_client)
    redis_client.delete(redis_keys.OUTBOX, redis_keys.OUTBOX_INFLIGHT)


def resolved(job_id: str, **changes: Any) -> ResolvedJob:
    values: dict[str, Any] = {
        "job_id": job_id,
        "job_class": "demo.echo",
        "payload": {"value": 1},
        "tenant_id": "acme",
        "queue": "default",
        "priority": 5,
        "delay_s": 0.0,
        "max_attempts": 1,
        "backoff": None,
        "timeout_s": None,
        "tags": [],
        "retry_of": None,
        "job_definition_id": None,
    }
    values.update(changes)
    return ResolvedJob(**values)


def outbox(redis_client: Any) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in redis_client.lrange(redis_keys.OUTBOX, 0, -1)]


class Recording:
    captures_dispatches = False

    def __init__(self, fail: bool = False) -> None:
        self.published: list[ResolvedJob] = []
        self.fail = fail

    def publish(self, job: ResolvedJob) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.published.append(job)


def test_batch_counts_each_job_once_and_claims_callbacks_once(hub: Any, unique: str, redis_client: Any) -> None:
    for name in ("then", "finally"):
        hub.hold(f"{unique}-{name}", {"job_id": f"{unique}-{name}"}, [])
    hub.open_batch(unique, 3, 0, {"then": f"{unique}-then", "finally": f"{unique}-finally"})
    assert hub.account_batch_job(unique, "a", failed=False) == []
    assert hub.account_batch_job(unique, "a", failed=False) == []  # replay: counted once
    assert hub.account_batch_job(unique, "b", failed=False) == []
    assert hub.account_batch_job(unique, "c", failed=False) == ["then", "finally"]
    assert hub.account_batch_job(unique, "c", failed=False) == []
    assert hub.batch_counters(unique)["processed"] == 3
    assert [json.loads(e["spec"])["job_id"] for e in outbox(redis_client)] == [f"{unique}-then", f"{unique}-finally"]


def test_concurrent_last_jobs_release_callbacks_exactly_once(hub: Any, unique: str, redis_client: Any) -> None:
    total = 40
    hub.hold(f"{unique}-then", {"job_id": "t"}, [])
    hub.hold(f"{unique}-finally", {"job_id": "f"}, [])
    hub.open_batch(unique, total, 0, {"then": f"{unique}-then", "finally": f"{unique}-finally"})
    released: list[str] = []
    barrier = threading.Barrier(8)

    def finish(start: int) -> None:
        barrier.wait()
        for i in range(start, total, 8):
            released.extend(Hub(redis_client).account_batch_job(unique, f"job-{i}", failed=False))
            released.extend(Hub(redis_client).account_batch_job(unique, f"job-{i}", failed=False))

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(released) == ["finally", "then"]
    assert len(outbox(redis_client)) == 2


def test_failures_beyond_allowance_claim_catch_once_and_skip_then(hub: Any, unique: str) -> None:
    for name in ("then", "catch", "finally"):
        hub.hold(f"{unique}-{name}", {"job_id": name}, [])
    hub.open_batch(unique, 4, 1, {n: f"{unique}-{n}" for n in ("then", "catch", "finally")})
    assert hub.account_batch_job(unique, "a", failed=True) == []  # within the allowance
    assert hub.account_batch_job(unique, "b", failed=True) == ["catch"]
    assert hub.account_batch_job(unique, "c", failed=True) == []
    assert hub.account_batch_job(unique, "d", failed=False) == ["finally"]


def test_cancelled_or_finished_batch_cannot_grow(hub: Any, unique: str) -> None:
    hub.open_batch(unique, 1, 0, {})
    assert hub.grow_batch(unique, 2) == 3
    hub.cancel_batch(unique)
    assert hub.grow_batch(unique, 1) == -1
    assert hub.grow_batch("no-such-batch", 1) == -1


def test_dependant_is_released_after_its_last_dependency_only(hub: Any, unique: str, redis_client: Any) -> None:
    job = f"{unique}-job"
    hub.hold(job, {"job_id": job, "pass_result": True}, [f"{unique}-a", f"{unique}-b"])
    assert set(hub.awaited([f"{unique}-a", f"{unique}-b", f"{unique}-c"])) == {f"{unique}-a", f"{unique}-b"}
    assert hub.resolve(f"{unique}-a", "completed", "") == ([], [])
    assert hub.resolve(f"{unique}-a", "completed", "") == ([], [])  # replay
    assert hub.resolve(f"{unique}-b", "completed", "") == ([job], [])
    assert outbox(redis_client)[-1]["dep"] == f"{unique}-b"
    assert hub.awaited([f"{unique}-a", f"{unique}-b"]) == []
    assert redis_client.exists(redis_keys.held_job(job)) == 0


def test_failed_dependency_cancels_through_the_event_stream(hub: Any, unique: str, redis_client: Any) -> None:
    job = f"{unique}-job"
    hub.hold(job, {"job_id": job}, [f"{unique}-a"])
    last = redis_client.xrevrange("celeriac:events", count=1)
    assert hub.resolve(f"{unique}-a", "failed", "dependency failed") == ([], [job])
    newest = redis_client.xrevrange("celeriac:events", count=1)
    assert newest != last
    event = json.loads(newest[0][1][b"e"])
    assert event["t"] == "cancel" and event["id"] == job and event["reason"] == "dependency failed"
    assert hub.resolve(f"{unique}-a", "failed", "again") == ([], [])
    assert outbox(redis_client) == []


def test_unique_lock_returns_the_holder_and_frees_only_for_it(hub: Any, unique: str) -> None:
    key = f"celeriac:unique:test:{unique}"
    assert hub.acquire_unique(key, "first", 60) is None
    assert hub.acquire_unique(key, "second", 60) == "first"
    hub.release_unique(key, "second")  # not the holder: nothing happens
    assert hub.acquire_unique(key, "third", 60) == "first"
    hub.release_unique(key, "first")
    assert hub.acquire_unique(key, "third", 60) is None
    hub.release_unique(key, "third")


def test_payload_identity_ignores_key_order_and_can_use_chosen_keys() -> None:
    assert payload_identity({"a": 1, "b": 2}) == payload_identity({"b": 2, "a": 1})
    assert payload_identity({"a": 1, "b": 2}) != payload_identity({"a": 1, "b": 3})
    assert payload_identity({"a": 1, "b": 2}, ["a"]) == payload_identity({"a": 1, "b": 3}, ["a"])


def test_spec_round_trip_adds_the_previous_result_when_asked() -> None:
    job = resolved("j1", tags=["x"], depends_on=["j0"])
    assert from_spec(json.loads(json.dumps(to_spec(job)))) == job
    chained = from_spec(to_spec(job, pass_result=True), previous_result={"n": 3})
    assert chained.payload == {"value": 1, "previous_result": {"n": 3}}


def test_outbox_publishes_released_jobs_with_the_previous_result(hub: Any, unique: str, redis_client: Any) -> None:
    job = resolved(f"{unique}-next")
    hub.hold(job.job_id, to_spec(job, pass_result=True), [f"{unique}-prev"])
    plain = Finished(id=f"{unique}-plain", status="completed")
    prev = Finished(id=f"{unique}-prev", status="completed")
    jobs = involved(hub, [plain, prev])
    assert jobs == [(prev, True)], "only the awaited job has follow-ups"
    follow_up(hub, jobs)
    publisher = Recording()
    results = {f"{unique}-prev": 41}
    assert drain_outbox(hub, publisher, results.get, lambda *_: None) == 1
    assert [j.payload for j in publisher.published] == [{"value": 1, "previous_result": 41}]
    assert redis_client.llen(redis_keys.OUTBOX) == 0 and redis_client.llen(redis_keys.OUTBOX_INFLIGHT) == 0


def test_broker_outage_keeps_released_jobs_in_the_outbox(hub: Any, unique: str, redis_client: Any) -> None:
    job = resolved(f"{unique}-next")
    hub.hold(job.job_id, to_spec(job), [f"{unique}-prev"])
    hub.resolve(f"{unique}-prev", "completed", "")
    with pytest.raises(ConnectionError):
        drain_outbox(hub, Recording(fail=True), lambda _: None, lambda *_: None)
    assert redis_client.llen(redis_keys.OUTBOX) == 1 and redis_client.llen(redis_keys.OUTBOX_INFLIGHT) == 0
    publisher = Recording()
    assert drain_outbox(hub, publisher, lambda _: None, lambda *_: None) == 1
    assert [j.job_id for j in publisher.published] == [job.job_id]


def test_entries_of_a_drainer_that_died_are_recovered(hub: Any, unique: str, redis_client: Any) -> None:
    redis_client.rpush(redis_keys.OUTBOX_INFLIGHT, json.dumps({"spec": json.dumps(to_spec(resolved(unique)))}))
    assert recover_inflight(hub) == 1
    publisher = Recording()
    drain_outbox(hub, publisher, lambda _: None, lambda *_: None)
    assert [j.job_id for j in publisher.published] == [unique]


def test_unreadable_spec_is_reported_and_does_not_block_the_rest(hub: Any, unique: str, redis_client: Any) -> None:
    redis_client.rpush(redis_keys.OUTBOX, json.dumps({"spec": json.dumps({"job_id": f"{unique}-bad", "nonsense": 1})}))
    redis_client.rpush(redis_keys.OUTBOX, json.dumps({"spec": json.dumps(to_spec(resolved(f"{unique}-good")))}))
    reported: list[tuple[str, str]] = []
    publisher = Recording()
    drain_outbox(hub, publisher, lambda _: None, lambda job_id, reason: reported.append((job_id, reason)))
    assert [j.job_id for j in publisher.published] == [f"{unique}-good"]
    assert reported and reported[0][0] == f"{unique}-bad" and "could not be queued" in reported[0][1]


def test_the_scripts_build_the_keys_redis_keys_names(hub: Any, redis_client: Any) -> None:
    """hub.py's Lua builds its keys from the prefix; app.redis_keys must name the same ones."""
    dep, job, batch = new_id(), new_id(), new_id()
    hub.hold(job, to_spec(resolved(job)), [dep])
    assert redis_client.exists(redis_keys.held_job(job), redis_keys.job_dependencies(job)) == 2
    assert redis_client.exists(redis_keys.job_dependants(dep)) == 1
    assert redis_client.sismember(redis_keys.AWAITED, dep)
    hub.open_batch(batch, 2, 0, {})
    hub.account_batch_job(batch, job, failed=False)
    assert redis_client.sismember(redis_keys.batch_done(batch), job)
    hub.resolve(dep, "completed", "")
    assert [entry["dep"] for entry in outbox(redis_client)] == [dep]
    redis_client.delete(redis_keys.batch(batch), redis_keys.batch_done(batch))
