"""Queue rate-limit API (J10): GET / PUT / DELETE /api/queues/<name>/rate-limit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis
from sqlalchemy import select

from app import redis_keys
from app.db import db
from app.models import AuditLog
from app.ratelimit import queue_limits
from tests.conftest import assert_problem

pytestmark = [pytest.mark.redis]


@pytest.fixture(autouse=True)
def clean(redis_client: redis.Redis) -> Iterator[None]:
    redis_client.delete(redis_keys.RATE_LIMIT_QUEUES)
    yield
    redis_client.delete(redis_keys.RATE_LIMIT_QUEUES)
    queue_limits.forget_cache()


def url(queue: str) -> str:
    return f"/api/queues/{queue}/rate-limit"


def test_get_put_delete_round_trip(client: Any, auth: Any, unique: str) -> None:
    queue = f"q-{unique}"
    viewer, admin = auth("viewer"), auth("admin")
    assert client.get(url(queue), headers=viewer).get_json() == {
        "queue": queue, "limit": None, "per": None, "source": None,
    }  # fmt: skip
    put = client.put(url(queue), json={"limit": 100, "per": 60}, headers=admin)
    assert put.status_code == 200
    expected = {"queue": queue, "limit": 100, "per": 60, "source": "api"}
    assert put.get_json() == expected
    assert client.get(url(queue), headers=viewer).get_json() == expected
    deleted = client.delete(url(queue), headers=admin)
    assert deleted.status_code == 204 and deleted.get_data() == b""
    assert client.get(url(queue), headers=viewer).get_json()["source"] is None


def test_changes_are_audited(client: Any, auth: Any, unique: str) -> None:
    queue = f"q-{unique}"
    client.put(url(queue), json={"limit": 5, "per": 1}, headers=auth("admin"))
    client.delete(url(queue), headers=auth("admin"))
    rows = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue).order_by(AuditLog.id)).all()
    assert [r.action for r in rows] == ["queue.rate_limit.set", "queue.rate_limit.delete"]
    assert rows[0].target_type == "queue" and rows[0].after["limit"] == 5
    assert rows[1].before["limit"] == 5 and rows[1].after["limit"] is None


def test_config_limit_shows_with_its_source(client: Any, auth: Any, app: Any) -> None:
    settings = app.extensions["celeriac_settings"]
    app.extensions["celeriac_settings"] = replace(settings, queue_rate_limits=(("emails", 100, 60),))
    try:
        body = client.get(url("emails"), headers=auth("viewer")).get_json()
        assert body == {"queue": "emails", "limit": 100, "per": 60, "source": "config"}
        client.put(url("emails"), json={"limit": 10, "per": 60}, headers=auth("admin"))
        assert client.get(url("emails"), headers=auth("viewer")).get_json()["source"] == "api"
        client.delete(url("emails"), headers=auth("admin"))
        assert client.get(url("emails"), headers=auth("viewer")).get_json()["source"] == "config"
    finally:
        app.extensions["celeriac_settings"] = settings


def test_needs_a_token(client: Any) -> None:
    assert_problem(client.get(url("emails")), 401)
    assert_problem(client.put(url("emails"), json={"limit": 1, "per": 1}), 401)
    assert_problem(client.delete(url("emails")), 401)


def test_changing_needs_admin(client: Any, auth: Any, redis_client: redis.Redis) -> None:
    assert_problem(client.put(url("emails"), json={"limit": 1, "per": 1}, headers=auth("operator")), 403)
    assert_problem(client.delete(url("emails"), headers=auth("operator")), 403)
    assert not redis_client.exists(redis_keys.RATE_LIMIT_QUEUES)


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0, "per": 60},
        {"limit": 10, "per": 0},
        {"limit": "10", "per": 60},
        {"limit": 1.5, "per": 60},
        {"limit": True, "per": 60},
        {"per": 60},
        {"limit": 10},
        {"limit": 10, "per": 60, "burst": 3},
    ],
)
def test_bad_values_are_422(client: Any, auth: Any, body: dict[str, Any], redis_client: redis.Redis) -> None:
    problem = assert_problem(client.put(url("emails"), json=body, headers=auth("admin")), 422)
    assert problem["detail"]
    assert not redis_client.exists(redis_keys.RATE_LIMIT_QUEUES)


def test_bad_queue_name_is_422(client: Any, auth: Any) -> None:
    assert_problem(client.get(url("no%20spaces"), headers=auth("viewer")), 422)


def test_not_json_is_400(client: Any, auth: Any) -> None:
    response = client.put(url("emails"), data="limit=1", headers=auth("admin"), content_type="text/plain")
    assert_problem(response, 400)


def test_openapi_lists_the_rate_limit_paths(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    assert {"get", "put", "delete"} <= set(paths["/api/queues/{name}/rate-limit"])
