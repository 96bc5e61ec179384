"""Concurrency options of POST /api/jobs/dispatch, GET /api/limits, PUT /api/limits/concurrency/<key>."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobExecution
from celeriac.concurrency import LIMITS, Slots, scoped_key
from tests import sample_jobs_concurrency
from tests.conftest import assert_problem

pytestmark = [pytest.mark.redis]
assert sample_jobs_concurrency.SpanJob  # a class that declares concurrency = 1 and a key function


def _dispatch(client: Any, headers: dict[str, str], **options: Any) -> Any:
    body = {"job_class": "demo.echo", "payload": {"value": 1}, "options": options}
    return client.post("/api/jobs/dispatch", json=body, headers=headers)


def test_dispatch_options_name_the_key_and_set_its_limit(
    client: Any, auth: Any, recording_publisher: list[Any], redis_client: redis.Redis, unique: str
) -> None:
    answer = _dispatch(client, auth("operator"), concurrency_key=f"user:{unique}", concurrency_limit=2)
    assert answer.status_code == 201
    [job] = recording_publisher
    assert job.celeriac_header()["concurrency"]["key"] == scoped_key("acme", f"user:{unique}")
    assert job.celeriac_header()["concurrency"]["limit"] == 2
    assert db.session.get(JobExecution, answer.get_json()["id"]).concurrency_key == f"user:{unique}"
    assert Slots(redis_client).limit(scoped_key("acme", f"user:{unique}")) == 2
    # The most recent limit wins; a dispatch naming only the key keeps it.
    _dispatch(client, auth("operator"), concurrency_key=f"user:{unique}", concurrency_limit=5)
    _dispatch(client, auth("operator"), concurrency_key=f"user:{unique}")
    assert Slots(redis_client).limit(scoped_key("acme", f"user:{unique}")) == 5


def test_a_limit_without_a_key_limits_the_job_class(client: Any, auth: Any, recording_publisher: list[Any]) -> None:
    assert _dispatch(client, auth("operator"), concurrency_limit=3).status_code == 201
    assert recording_publisher[0].celeriac_header()["concurrency"]["key"] == "acme:demo.echo"


def test_a_class_key_is_computed_from_the_payload_and_its_default_does_not_undo_an_edit(
    client: Any, auth: Any, recording_publisher: list[Any], redis_client: redis.Redis, unique: str
) -> None:
    key = scoped_key("acme", f"span:{unique}")
    redis_client.hset(LIMITS, key, 4)  # an admin raised it
    body = {"job_class": "tests.concurrency.span", "payload": {"key": unique}}
    assert client.post("/api/jobs/dispatch", json=body, headers=auth("operator")).status_code == 201
    assert recording_publisher[0].celeriac_header()["concurrency"]["key"] == key
    assert Slots(redis_client).limit(key) == 4
    # The class's key function needs its field: a payload without it is refused, not a 500.
    missing = client.post("/api/jobs/dispatch", json={**body, "payload": {}}, headers=auth("operator"))
    assert "concurrency_key" in assert_problem(missing, 422)["detail"]


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency_limit": 0},
        {"concurrency_limit": "2"},
        {"concurrency_limit": 1.5},
        {"concurrency_limit": 100_001},
        {"concurrency_key": ""},
        {"concurrency_key": "k" * 201},
        {"concurrency_key": "   "},
        {"concurrency_key": 7},
    ],
)
def test_bad_concurrency_options_answer_422(client: Any, auth: Any, options: dict[str, Any]) -> None:
    assert_problem(_dispatch(client, auth("operator"), **options), 422)


def test_limits_show_rate_and_concurrency_limits_of_the_tenant_only(
    client: Any, auth: Any, redis_client: redis.Redis, unique: str
) -> None:
    slots = Slots(redis_client)
    mine, theirs = scoped_key("acme", f"k-{unique}"), scoped_key("other", f"k-{unique}")
    slots.set_limit(mine, 2, lease_s=30)
    slots.set_limit(theirs, 9, lease_s=30)
    slots.acquire(mine, "a", limit=2, lease_s=30, message=None)
    slots.acquire(mine, "b", limit=2, lease_s=30, message=None)
    slots.acquire(mine, "c", limit=2, lease_s=30, message='{"task": "demo.echo"}')
    answer = client.get("/api/limits", headers=auth("viewer"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert isinstance(body["rate_limits"], list)
    found = {item["key"]: item for item in body["concurrency_limits"]}
    assert found[f"k-{unique}"] == {"key": f"k-{unique}", "tenant": "acme", "limit": 2, "running": 2, "waiting": 1}
    assert {item["tenant"] for item in body["concurrency_limits"]} == {"acme"}


def test_queue_rate_limits_show_with_their_usage(client: Any, auth: Any, unique: str) -> None:
    queue = f"q-{unique}"
    client.put(f"/api/queues/{queue}/rate-limit", json={"limit": 10, "per": 60}, headers=auth("admin"))
    rates = client.get("/api/limits", headers=auth("viewer")).get_json()["rate_limits"]
    [mine] = [item for item in rates if item["name"] == queue]
    assert mine == {"scope": "queue", "name": queue, "key": None, "limit": 10, "per": 60, "source": "api", "used": 0}


def test_an_admin_edits_a_limit_at_runtime_and_it_is_audited(
    client: Any, auth: Any, redis_client: redis.Redis, unique: str
) -> None:
    key = f"user/{unique}:x"  # slashes and colons are fine in a key
    answer = client.put(f"/api/limits/concurrency/{key}", json={"limit": 3}, headers=auth("admin"))
    assert answer.status_code == 200
    assert answer.get_json() == {"key": key, "tenant": "acme", "limit": 3, "running": 0, "waiting": 0}
    assert Slots(redis_client).limit(scoped_key("acme", key)) == 3
    [entry] = db.session.scalars(select(AuditLog).where(AuditLog.target_id == key)).all()
    assert entry.action == "concurrency.limit.set" and entry.after == {"limit": 3} and entry.before == {"limit": 1}


def test_raising_a_limit_starts_waiting_jobs_at_once(
    client: Any, auth: Any, redis_client: redis.Redis, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.ratelimit import limits_view

    sent: list[str] = []
    monkeypatch.setattr(limits_view, "publish_parked", lambda app, messages: sent.extend(messages) or len(messages))
    slots, key = Slots(redis_client), scoped_key("acme", f"r-{unique}")
    slots.acquire(key, "a", limit=1, lease_s=30, message=None)
    slots.acquire(key, "b", limit=1, lease_s=30, message='{"task": "demo.echo", "options": {"task_id": "b"}}')
    answer = client.put(f"/api/limits/concurrency/r-{unique}", json={"limit": 2}, headers=auth("admin"))
    assert answer.get_json()["running"] == 2 and answer.get_json()["waiting"] == 0
    assert sent == ['{"task": "demo.echo", "options": {"task_id": "b"}}']


@pytest.mark.parametrize(
    ("body", "status"),
    [({}, 400), ({"limit": "3"}, 400), ({"limit": 3, "extra": 1}, 400), ({"limit": 0}, 422), ({"limit": 10**6}, 422)],
)
def test_bad_limit_bodies_answer_problems(client: Any, auth: Any, body: Any, status: int) -> None:
    assert_problem(client.put("/api/limits/concurrency/k", json=body, headers=auth("admin")), status)


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_admins_edit_limits(client: Any, auth: Any, role: str) -> None:
    assert_problem(client.put("/api/limits/concurrency/k", json={"limit": 2}, headers=auth(role)), 403)
