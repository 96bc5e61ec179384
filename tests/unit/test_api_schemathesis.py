"""schemathesis against the app: generated requests for every documented operation, and each
answer must conform to /api/openapi.json (status, content type, body schema) and never be a 5xx.

Deterministic (derandomized, no example database) and bounded: EXAMPLES per operation. Requests
run against the WSGI app as an admin of a tenant of their own (one per operation); nothing
reaches the broker (`recording_publisher`). Operations that act on the whole installation are
left out, and global state an operation changes is put back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import redis_keys
from ops_ui import create_app
from ops_ui.blueprints.api.openapi import document

#: Generated requests per operation: valid data, data the document rules out, and valid data
#: with ids and values that exist (so that requests get past "unknown job class" to the work).
EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

#: Body values that exist, put in wherever a generated body has the key.
KNOWN_VALUES = {"job_class": "demo.echo", "cron": "0 3 1 1 *", "timezone": "Europe/Berlin", "queue": "default"}

#: Paths whose operations stop workers, drop data or pause queues for everybody.
DESTRUCTIVE = re.compile(r"^/api/(workers/|admin/queue/clear|queues/\{name\}/(pause|resume))")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation of the document but the destructive ones."""
    with create_app({"TESTING": True}).app_context():
        paths = document()["paths"]
    return [(method.upper(), path) for path, item in paths.items() for method in item if not DESTRUCTIVE.match(path)]


@pytest.fixture()
def tenant(unique: str) -> str:
    """A tenant of its own per operation: what one operation's requests change, others never see."""
    return f"schemathesis-{unique}"


@pytest.fixture()
def admin(make_token: Any, tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token('admin', tenant)}"}


@pytest.fixture()
def leaves_nothing_global(app: Any, redis_client: Any, tenant: str) -> Iterator[None]:
    """Queue rate limits are global and schedules fire from RedBeat: put back the limits and
    remove the tenant's schedules, so that later tests (and their workers and beat) never see them."""
    from app.db import db
    from app.schedules.service import default_service

    limits = redis_client.hgetall(redis_keys.RATE_LIMIT_QUEUES)
    yield
    with redis_client.pipeline() as pipe:
        pipe.delete(redis_keys.RATE_LIMIT_QUEUES)
        if limits:
            pipe.hset(redis_keys.RATE_LIMIT_QUEUES, mapping=limits)
        pipe.execute()
    service = default_service(db.session)
    for row in service.get_scheduled_jobs(tenant):
        service.remove_schedule(row.id, tenant)


@pytest.fixture()
def real_ids(client: Any, admin: dict[str, str], recording_publisher: list[Any]) -> dict[str, str]:
    """Ids that exist, so that generated requests reach more than the 404 of a random id."""
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()
    batch = client.post("/api/batches", json={"jobs": [{"job_class": "demo.echo"}]}, headers=admin).get_json()
    chain = client.post("/api/chains", json={"jobs": [{"job_class": "demo.echo"}]}, headers=admin).get_json()
    schedule = client.post(
        "/api/schedules", json={"job_class": "demo.echo", "cron": "0 3 1 1 *"}, headers=admin
    ).get_json()
    return {
        "job_id": batch["job_ids"][0],
        "batch_id": batch["id"],
        "chain_id": chain["id"],
        "schedule_id": schedule["id"],
        "job_class": "demo.echo",
        "name": "schemathesis",
        "key": "schemathesis",  # a concurrency key (PUT /api/limits/concurrency/{key})
    }


@pytest.mark.usefixtures("leaves_nothing_global")
@pytest.mark.parametrize(("method", "path"), _operations())
def test_answers_conform_to_the_document(
    app: Any, admin: dict[str, str], real_ids: dict[str, str], recording_publisher: list[Any], method: str, path: str
) -> None:
    operation = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=admin)[path][method]
    known = {name: real_ids[name] for name in re.findall(r"\{(\w+)\}", path)}
    cases = st.one_of(
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
        operation.as_strategy(schemathesis.GenerationMode.NEGATIVE),
        operation.as_strategy(schemathesis.GenerationMode.POSITIVE, path_parameters=known).map(_known_values),
    )

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    def answers_conform(case: Any) -> None:
        case.call_and_validate(headers=admin, checks=CHECKS)

    answers_conform()


def _known_values(case: Any) -> Any:
    """The case with KNOWN_VALUES wherever its body (or a job of it) has one of those keys."""
    stack = [case.body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            item.update({key: value for key, value in KNOWN_VALUES.items() if key in item})
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return case


@pytest.mark.usefixtures("leaves_nothing_global")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/jobs/{job_id}", None),
        ("GET", "/api/jobs", None),
        ("GET", "/api/schedules", None),
        ("GET", "/api/schedules/{schedule_id}", None),
        ("PATCH", "/api/schedules/{schedule_id}", {"name": None}),
        ("POST", "/api/schedules/{schedule_id}/pause", None),
        ("GET", "/api/batches/{batch_id}", None),
        ("GET", "/api/chains/{chain_id}", None),
    ],
)
def test_answers_with_null_fields_conform(
    app: Any, admin: dict[str, str], real_ids: dict[str, str], method: str, path: str, body: Any
) -> None:
    """Regression: the hand-kept document typed every nullable field `string`, so schemathesis
    refused a schedule without a name, a paused schedule's next_run_at and a pending job's times."""
    operation = schemathesis.openapi.from_wsgi("/api/openapi.json", app, headers=admin)[path][method]
    known = {name: real_ids[name] for name in re.findall(r"\{(\w+)\}", path)}
    case = operation.Case(path_parameters=known, **({"body": body} if body is not None else {}))
    response = case.call_and_validate(headers=admin, checks=CHECKS)
    assert response.status_code == 200
    assert None in _values(response.json())


def _values(answer: Any) -> list[Any]:
    """Every value of a JSON answer, nested ones included."""
    found: list[Any] = []
    stack = [answer]
    while stack:
        item = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            found.append(item)
        else:
            stack.extend(children)
    return found
