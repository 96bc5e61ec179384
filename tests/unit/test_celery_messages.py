"""Celeriac's own messages are Celery's (issue 15): the Redis entry its publisher writes for a
job, alone or pipelined in a bulk, equals the one Celery's `send_task` writes, field by
field, and so does the `pub` event recorded for it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app.backends import celery_publisher
from app.backends.celery_messages import Builder
from app.backends.celery_publisher import CeleryPublisher
from app.broker import celery_app
from app.config import get_settings
from app.crypto import is_sealed
from app.kernel.dispatching import DispatchSpec, ResolvedJob, resolve
from app.monitoring.queue_stats import broker_queue_keys
from celeriac import signals
from tests.crypto_keys import use_keys

pytestmark = pytest.mark.redis

#: Each job the comparison runs on, as dispatch options (the queue is the test's own).
CASES: dict[str, dict[str, Any]] = {
    "a job class": {"job_class": "demo.echo", "payload": {"value": 1}},
    "a plain task": {"job_class": "demo.add", "payload": {"x": 1, "y": 2}},
    "positional arguments": {"job_class": "demo.add", "payload": {}, "args": [1, 2]},
    "a delay": {"job_class": "demo.echo", "payload": {"value": 2}, "delay_s": 30},
    "an expiry after a delay": {"job_class": "demo.echo", "payload": {}, "delay_s": 5, "expires_s": 60},
    "time limits": {"job_class": "demo.echo", "payload": {}, "timeout_s": 20},
    "the lowest priority": {"job_class": "demo.echo", "payload": {}, "priority": 0},
    "the highest priority": {"job_class": "demo.echo", "payload": {}, "priority": 9},
    "tags, tenant, attempts": {
        "job_class": "demo.echo",
        "payload": {},
        "tags": ["a", "b"],
        "tenant_id": "acme",
        "max_attempts": 4,
        "backoff": [1, 5],
    },
    "text saferepr writes its own way": {"job_class": "demo.echo", "payload": {"value": "it's\na \\ test"}},
    "deep nesting": {"job_class": "demo.echo", "payload": {"value": {"a": {"b": {"c": [1, {"d": 2}]}}}}},
    "a concurrency limit": {"job_class": "demo.echo", "payload": {}, "concurrency_key": "k", "concurrency_limit": 2},
}


@pytest.fixture()
def events(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The events Celeriac's publish hook emits, captured instead of buffered."""
    captured: list[dict[str, Any]] = []
    monkeypatch.setattr(signals, "emit", captured.append)
    monkeypatch.setattr(signals, "emit_many", captured.extend)
    yield captured


def job_of(case: dict[str, Any], queue: str) -> ResolvedJob:
    from app.backends.current import backends

    spec = DispatchSpec(**{"queue": queue, **case})
    return resolve(spec, backends().registry.get(spec.job_class), None, get_settings())


def taken(redis_client: Any, queue: str) -> tuple[str, dict[str, Any]]:
    """The only entry in `queue`'s lists (removed), and the list it was in."""
    found = [(key, raw) for key in broker_queue_keys(queue) for raw in redis_client.lrange(key, 0, -1)]
    assert len(found) == 1, found
    key, raw = found[0]
    redis_client.delete(key)
    return key.decode() if isinstance(key, bytes) else key, json.loads(raw)


def comparable(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with what differs between two publishes of one job set aside: the delivery
    tag, the publish time, and times computed from "now" (checked apart, to the second)."""
    headers, properties = dict(entry["headers"]), dict(entry["properties"])
    assert isinstance(headers.pop("celeriac_ts"), float)
    properties.pop("delivery_tag")
    times = {name: headers.pop(name) for name in ("eta", "expires")}
    expiration = properties.pop("expiration", None)
    body = json.loads(base64.b64decode(entry["body"]))
    return {**entry, "headers": headers, "properties": properties, "body": body, "times": times, "exp": expiration}


def assert_same(celery: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs, mine = comparable(celery), comparable(ours)
    for name, value in theirs.pop("times").items():
        other = mine["times"].pop(name)
        assert (value is None) == (other is None), name
        if value is not None:
            assert abs((datetime.fromisoformat(value) - datetime.fromisoformat(other)).total_seconds()) < 5, name
    mine.pop("times")
    first, second = theirs.pop("exp"), mine.pop("exp")
    assert (first is None) == (second is None)
    if first is not None:
        assert abs(int(first) - int(second)) < 5000
    assert mine == theirs


def event_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one event captured, without what differs between two publishes (its id and time,
    and whether ETA and expiry are set rather than their values, computed from "now")."""
    (event,) = events
    events.clear()
    kept = {key: value for key, value in event.items() if key not in ("eid", "ts")}
    for name in ("eta", "exp"):
        kept[name] = kept[name] is not None
    return kept


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_message_is_the_one_send_task_writes(
    name: str, unique: str, redis_client: Any, events: list[dict[str, Any]]
) -> None:
    queue = f"same-{unique}"
    job = job_of(CASES[name], queue)
    assert celery_publisher._message(job, Builder(celery_app)) is not None  # built by Celeriac, not send_task

    celery_publisher._send_task(job)
    celery_list, celery_entry = taken(redis_client, queue)
    celery_event = event_of(events)
    CeleryPublisher().publish(job)
    our_list, our_entry = taken(redis_client, queue)

    assert our_list == celery_list  # the queue and the priority bucket
    assert_same(celery_entry, our_entry)
    assert event_of(events) == celery_event


def test_a_pipelined_bulk_writes_what_send_task_writes_in_the_same_order(
    unique: str, redis_client: Any, events: list[dict[str, Any]]
) -> None:
    queue = f"bulk-{unique}"
    jobs = [job_of(CASES[name], queue) for name in sorted(CASES)]
    expected = []
    for job in jobs:
        celery_publisher._send_task(job)
        expected.append(taken(redis_client, queue))
    events.clear()

    assert CeleryPublisher().publish_many(jobs) == len(jobs)

    for job, (key, celery_entry) in zip(jobs, expected, strict=True):
        ours = [json.loads(raw) for raw in redis_client.lrange(key, 0, -1)]
        mine = next(entry for entry in ours if entry["headers"]["id"] == job.job_id)
        assert_same(celery_entry, mine)
    assert [event["id"] for event in events] == [job.job_id for job in jobs]


def test_an_encrypted_job_says_nothing_in_clear_as_with_send_task(unique: str, redis_client: Any) -> None:
    queue = f"sealed-{unique}"
    with use_keys(Fernet.generate_key().decode()):
        job = job_of({"job_class": "demo.echo", "payload": {"value": "secret"}, "encrypted": True}, queue)
        celery_publisher._send_task(job)
        _, celery_entry = taken(redis_client, queue)
        CeleryPublisher().publish(job)
        _, our_entry = taken(redis_client, queue)

    for entry in (celery_entry, our_entry):
        raw = json.dumps(entry) + base64.b64decode(entry["body"]).decode()
        assert "secret" not in raw
        assert is_sealed(json.loads(base64.b64decode(entry["body"]))[1])
    # The sealed payloads differ (each sealing is random): compare the rest.
    for entry in (celery_entry, our_entry):
        body = json.loads(base64.b64decode(entry["body"]))
        entry["body"] = base64.b64encode(json.dumps([body[0], None, body[2]]).encode()).decode()
    assert_same(celery_entry, our_entry)
