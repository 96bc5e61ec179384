"""Queue settings API: GET /api/queues, GET|PUT /api/queues/{name}, and max_pending at dispatch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import delete, select

from app import redis_keys
from app.control.weighted_cycle import current_weights, forget_weights
from app.db import db
from app.errors import QueueFull
from app.jobs import batch
from app.models import AuditLog, QueueSettings
from app.ratelimit import queue_limits
from tasks.demo import Echo
from tests.conftest import assert_problem

pytestmark = [pytest.mark.redis]


@pytest.fixture()
def queue(unique: str, redis_client: redis.Redis) -> Iterator[str]:
    name = f"q-{unique}"
    yield name
    db.session.rollback()
    db.session.execute(delete(QueueSettings).where(QueueSettings.name == name))
    db.session.commit()
    redis_client.hdel(redis_keys.QUEUE_WEIGHTS, name)
    redis_client.hdel(redis_keys.RATE_LIMIT_QUEUES, name)
    queue_limits.forget_cache()
    forget_weights()


def url(name: str) -> str:
    return f"/api/queues/{name}"


def test_a_queue_never_configured_answers_its_defaults(client: Any, auth: Any, queue: str, settings: Any) -> None:
    body = client.get(url(queue), headers=auth("viewer")).get_json()
    assert body["queue"] == queue
    assert (body["max_attempts"], body["retry_after"], body["timeout"]) == (3, None, settings.default_timeout_s)
    assert (body["encrypted"], body["weight"], body["max_pending"]) == (False, 1, None)
    assert body["rate_limit"] == {"queue": queue, "limit": None, "per": None, "source": None}
    assert set(body["sources"].values()) == {"default"}


def test_put_changes_what_it_names_and_null_clears(client: Any, auth: Any, queue: str) -> None:
    admin = auth("admin")
    first = client.put(url(queue), json={"max_attempts": 5, "weight": 4, "max_pending": 10}, headers=admin)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert (first.get_json()["max_attempts"], first.get_json()["weight"]) == (5, 4)
    # Left out: unchanged. Null: cleared (back to the default).
    second = client.put(url(queue), json={"weight": None, "retry_after": 30}, headers=admin).get_json()
    assert (second["max_attempts"], second["max_pending"], second["retry_after"]) == (5, 10, 30)
    assert second["weight"] == 1 and second["sources"]["weight"] == "default"
    assert second["sources"]["max_attempts"] == "api"
    assert client.get(url(queue), headers=auth("viewer")).get_json() == second


def test_rate_limit_is_the_one_store_of_the_rate_limit_route(client: Any, auth: Any, queue: str) -> None:
    admin = auth("admin")
    put = client.put(url(queue), json={"rate_limit": {"limit": 100, "per": 60}}, headers=admin).get_json()
    shape = {"queue": queue, "limit": 100, "per": 60, "source": "api"}
    assert put["rate_limit"] == shape
    assert client.get(f"{url(queue)}/rate-limit", headers=admin).get_json() == shape
    client.put(f"{url(queue)}/rate-limit", json={"limit": 7, "per": 1}, headers=admin)
    assert client.get(url(queue), headers=admin).get_json()["rate_limit"]["limit"] == 7
    cleared = client.put(url(queue), json={"rate_limit": None}, headers=admin).get_json()
    assert cleared["rate_limit"]["source"] is None
    assert client.get(f"{url(queue)}/rate-limit", headers=admin).get_json()["limit"] is None


def test_weights_reach_the_mirror_workers_read(client: Any, auth: Any, queue: str, redis_client: redis.Redis) -> None:
    client.put(url(queue), json={"weight": 3}, headers=auth("admin"))
    assert redis_client.hget(redis_keys.QUEUE_WEIGHTS, queue) == b"3"
    forget_weights()
    assert current_weights()[queue] == 3
    client.put(url(queue), json={"weight": None}, headers=auth("admin"))
    assert redis_client.hget(redis_keys.QUEUE_WEIGHTS, queue) is None


@pytest.mark.parametrize(
    "body",
    [
        {"max_attempts": "5"},
        {"weight": 2.5},
        {"encrypted": "yes"},
        {"rate_limit": "100/60"},
        {"rate_limit": {"limit": 1}},
        {"rate_limit": {"limit": 1, "per": 1, "burst": 2}},
        {"colour": "red"},
        [1, 2],
    ],
)
def test_wrong_shapes_are_400(client: Any, auth: Any, queue: str, body: Any) -> None:
    assert_problem(client.put(url(queue), json=body, headers=auth("admin")), 400)
    assert db.session.get(QueueSettings, queue) is None


@pytest.mark.parametrize(
    "body",
    [
        {"max_attempts": 0},
        {"max_attempts": 101},
        {"timeout": 10**7},
        {"weight": 0},
        {"weight": 101},
        {"max_pending": 0},
        {"retry_after": -1},
        {"rate_limit": {"limit": 0, "per": 60}},
    ],
)
def test_values_out_of_range_are_422_and_change_nothing(client: Any, auth: Any, queue: str, body: Any) -> None:
    client.put(url(queue), json={"max_attempts": 4}, headers=auth("admin"))
    assert_problem(client.put(url(queue), json=body, headers=auth("admin")), 422)
    assert client.get(url(queue), headers=auth("admin")).get_json()["max_attempts"] == 4


def test_bad_names_are_422(client: Any, auth: Any) -> None:
    assert_problem(client.get(url("no%20spaces"), headers=auth("viewer")), 422)
    assert_problem(client.put(url("x" * 101), json={"weight": 2}, headers=auth("admin")), 422)


def test_changing_needs_admin_and_is_audited(client: Any, auth: Any, queue: str) -> None:
    assert_problem(client.put(url(queue), json={"weight": 2}, headers=auth("operator")), 403)
    assert_problem(client.put(url(queue), json={"weight": 2}), 401)
    client.put(url(queue), json={"weight": 2}, headers=auth("admin"))
    client.put(url(queue), json={"weight": 2}, headers=auth("admin"))  # no change: no entry
    rows = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue)).all()
    assert [r.action for r in rows] == ["queue.settings.update"]
    assert rows[0].before["weight"] == 1 and rows[0].after["weight"] == 2 and rows[0].target_type == "queue"


def test_the_list_shows_settings_and_pause_state(client: Any, auth: Any, queue: str) -> None:
    client.put(url(queue), json={"max_pending": 3}, headers=auth("admin"))
    listed = client.get("/api/queues", headers=auth("viewer")).get_json()["queues"]
    entry = next(q for q in listed if q["queue"] == queue)
    assert entry["max_pending"] == 3 and entry["paused"] is False and entry["weight"] == 1


def _dispatch(client: Any, headers: Any, queue: str, **options: Any) -> Any:
    body = {"job_class": "demo.echo", "payload": {"value": 1}, "options": {"queue": queue, **options}}
    return client.post("/api/jobs/dispatch", json=body, headers=headers)


def test_dispatch_over_max_pending_answers_429_with_retry_after(client: Any, auth: Any, queue: str) -> None:
    client.put(url(queue), json={"max_pending": 2}, headers=auth("admin"))
    operator = auth("operator")
    assert [_dispatch(client, operator, queue).status_code for _ in range(2)] == [201, 201]
    refused = _dispatch(client, operator, queue)
    problem = assert_problem(refused, 429)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "max_pending is 2" in problem["detail"]
    pending = client.get(f"/api/jobs?queue={queue}&status=pending", headers=operator).get_json()
    assert len(pending["items"]) == 2


def test_job_dispatch_raises_queue_full(client: Any, auth: Any, queue: str) -> None:
    client.put(url(queue), json={"max_pending": 1}, headers=auth("admin"))
    Echo.on_queue(queue).dispatch(value=1)
    with pytest.raises(QueueFull, match=f"queue '{queue}' is full"):
        Echo.on_queue(queue).dispatch(value=2)


def test_batches_respect_max_pending_all_or_nothing(client: Any, auth: Any, queue: str) -> None:
    client.put(url(queue), json={"max_pending": 2}, headers=auth("admin"))
    with pytest.raises(QueueFull):
        batch([Echo.on_queue(queue).make(value=n) for n in range(3)]).dispatch()
    body = {"jobs": [{"job_class": "demo.echo", "payload": {}, "options": {"queue": queue}}] * 3}
    assert_problem(client.post("/api/batches", json=body, headers=auth("operator")), 429)
    chain = {"jobs": [{"job_class": "demo.echo", "payload": {}, "options": {"queue": queue}}] * 3}
    assert_problem(client.post("/api/chains", json=chain, headers=auth("operator")), 429)
    assert db.session.scalar(select(QueueSettings.max_pending).where(QueueSettings.name == queue)) == 2
    listed = client.get(f"/api/jobs?queue={queue}", headers=auth("operator")).get_json()["items"]
    assert listed == []


def test_queue_settings_apply_to_dispatched_jobs(
    client: Any, auth: Any, queue: str, recording_publisher: list[Any]
) -> None:
    client.put(url(queue), json={"retry_after": 42, "timeout": 33, "max_attempts": 9}, headers=auth("admin"))
    assert _dispatch(client, auth("operator"), queue).status_code == 201
    sent = recording_publisher[-1]
    assert (sent.timeout_s, sent.backoff) == (33, [42])
    assert sent.celery_options()["soft_time_limit"] == 33 and sent.celeriac_header()["backoff"] == [42]
    # demo.echo states max_tries = 1 itself: the queue's max_attempts does not override it.
    assert sent.max_attempts == 1
    # The dispatch's own options win over the queue's.
    _dispatch(client, auth("operator"), queue, timeout=5, backoff=[1], max_attempts=2)
    sent = recording_publisher[-1]
    assert (sent.timeout_s, sent.backoff, sent.max_attempts) == (5, [1], 2)
