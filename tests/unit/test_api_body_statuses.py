"""Which bad bodies answer 400 and which 422 (API.md), pinned before validation moved to models.

400: not JSON, not an object, a required field missing, a field of the wrong JSON type where
the body's shape is at stake. 422: well-formed but invalid values. Every answer is a
problem+json document whose detail names the offending field, so a client can point at it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import assert_problem

ECHO = {"job_class": "demo.echo"}
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def send(client: Any, method: str, path: str, body: Any, headers: dict[str, str]) -> Any:
    return client.open(path, method=method, json=body, headers=headers)


DISPATCH = [
    ({}, 400, "job_class"),
    ({"job_class": 5}, 400, "job_class"),
    ({"job_class": ""}, 400, "job_class"),
    ({**ECHO, "payload": [1]}, 400, "payload"),
    ({**ECHO, "payload": "x"}, 400, "payload"),
    ({**ECHO, "options": "fast"}, 400, "options"),
    ({**ECHO, "options": {"colour": 1}}, 422, "colour"),
    ({**ECHO, "options": {"queue": 5}}, 422, "queue"),
    ({**ECHO, "options": {"priority": "high"}}, 422, "priority"),
    ({**ECHO, "options": {"priority": True}}, 422, "priority"),
    ({**ECHO, "options": {"priority": 10}}, 422, "priority"),
    ({**ECHO, "options": {"tags": "a"}}, 422, "tags"),
    ({**ECHO, "options": {"tags": [1]}}, 422, "tags"),
    ({**ECHO, "options": {"backoff": [True]}}, 422, "backoff"),
    ({**ECHO, "options": {"backoff": 5}}, 422, "backoff"),
    ({**ECHO, "options": {"delay": "soon"}}, 422, "delay"),
    ({**ECHO, "options": {"delay": -1}}, 422, "delay"),
    ({**ECHO, "options": {"max_attempts": "3"}}, 422, "max_attempts"),
    ({**ECHO, "options": {"timeout": False}}, 422, "timeout"),
    ({**ECHO, "options": {"depends_on": "x"}}, 422, "depends_on"),
    ({**ECHO, "options": {"depends_on": [1]}}, 422, "depends_on"),
    ({**ECHO, "options": {"encrypted": "yes"}}, 422, "encrypted"),
    ({**ECHO, "options": {"unique_id": ""}}, 422, "unique_id"),
    ({**ECHO, "options": {"unique_id": "k"}}, 422, "unique_for"),
    ({**ECHO, "options": {"unique_for": "1h"}}, 422, "unique_for"),
    ({**ECHO, "options": {"expires": "never"}}, 422, "expires"),
    ({"job_class": "no.such.job"}, 422, "no.such.job"),
]


@pytest.mark.parametrize(("body", "status", "field"), DISPATCH)
def test_dispatch_bad_bodies(
    client: Any, auth: Any, recording_publisher: list[Any], body: Any, status: int, field: str
) -> None:
    detail = assert_problem(send(client, "POST", "/api/jobs/dispatch", body, auth()), status)["detail"]
    assert field in detail
    assert recording_publisher == []


@pytest.mark.parametrize(
    "body",
    [
        {**ECHO, "payload": None},
        {**ECHO, "options": None},
        {**ECHO, "options": []},
        {**ECHO, "options": 0},
        {**ECHO, "unknown_top_level_key": 1},
        {**ECHO, "options": {"delay": 1.5, "max_attempts": 2.0, "priority": 3, "backoff": [1, 2.5]}},
    ],
)
def test_dispatch_lenient_bodies_are_accepted(
    client: Any, auth: Any, recording_publisher: list[Any], body: Any
) -> None:
    response = send(client, "POST", "/api/jobs/dispatch", body, auth())
    assert response.status_code == 201, response.get_data(as_text=True)


@pytest.mark.parametrize(("text", "status"), [('{"job_class": ', 400), ("[]", 400), ('"x"', 400), ("5", 400)])
def test_bodies_that_are_not_json_objects_are_400(client: Any, auth: Any, text: str, status: int) -> None:
    for path in ("/api/jobs/dispatch", "/api/batches", "/api/chains", "/api/schedules/preview"):
        response = client.post(path, data=text, headers={**auth("admin"), "Content-Type": "application/json"})
        assert_problem(response, status)


GROUPS = [
    ("/api/batches", {}, 400, "jobs"),
    ("/api/batches", {"jobs": "x"}, 400, "jobs"),
    ("/api/batches", {"jobs": [5]}, 400, "jobs[0]"),
    ("/api/batches", {"jobs": [{}]}, 400, "job_class"),
    ("/api/batches", {"jobs": [ECHO, {"job_class": "demo.echo", "payload": []}]}, 400, "jobs[1]"),
    ("/api/batches", {"jobs": [{**ECHO, "options": 5}]}, 400, "options"),
    ("/api/batches", {"jobs": [{**ECHO, "options": {"priority": "x"}}]}, 422, "priority"),
    ("/api/batches", {"jobs": []}, 422, "job"),
    ("/api/batches", {"jobs": [ECHO], "name": 5}, 400, "name"),
    ("/api/batches", {"jobs": [ECHO], "name": "n" * 201}, 400, "name"),
    ("/api/batches", {"jobs": [ECHO], "then": 5}, 400, "then"),
    ("/api/batches", {"jobs": [ECHO], "catch": {}}, 400, "catch"),
    ("/api/batches", {"jobs": [ECHO], "finally": {"job_class": 1}}, 400, "finally"),
    ("/api/batches", {"jobs": [ECHO], "allow_failures": -1}, 422, "allow_failures"),
    ("/api/batches", {"jobs": [ECHO], "allow_failures": "x"}, 422, "allow_failures"),
    ("/api/batches", {"jobs": [ECHO], "allow_failures": 1.5}, 422, "allow_failures"),
    ("/api/chains", {}, 400, "jobs"),
    ("/api/chains", {"jobs": [{"payload": {}}]}, 400, "job_class"),
    ("/api/chains", {"jobs": [ECHO], "catch": 5}, 400, "catch"),
    ("/api/chains", {"jobs": [ECHO], "name": []}, 400, "name"),
    ("/api/chains", {"jobs": [{**ECHO, "options": {"colour": 1}}]}, 422, "colour"),
    (f"/api/batches/{UNKNOWN_ID}/jobs", {"jobs": "x"}, 400, "jobs"),
    (f"/api/batches/{UNKNOWN_ID}/jobs", {"jobs": [{}]}, 400, "job_class"),
]


@pytest.mark.parametrize(("path", "body", "status", "field"), GROUPS)
def test_batch_and_chain_bad_bodies(
    client: Any, auth: Any, recording_publisher: list[Any], path: str, body: Any, status: int, field: str
) -> None:
    detail = assert_problem(send(client, "POST", path, body, auth()), status)["detail"]
    assert field in detail
    assert recording_publisher == []


def test_unknown_batch_with_a_well_formed_body_is_404(client: Any, auth: Any) -> None:
    assert_problem(send(client, "POST", f"/api/batches/{UNKNOWN_ID}/jobs", {"jobs": [ECHO]}, auth()), 404)


SCHEDULE = {"job_class": "demo.echo", "cron": "0 3 * * *"}
SCHEDULES = [
    ("POST", "/api/schedules/preview", {}, 400, "cron"),
    ("POST", "/api/schedules/preview", {"cron": 5}, 400, "cron"),
    ("POST", "/api/schedules/preview", {"cron": "* * * * *", "timezone": 5}, 400, "timezone"),
    ("POST", "/api/schedules/preview", {"cron": "* * * *"}, 422, "4 fields"),
    ("POST", "/api/schedules", {"cron": "0 3 * * *"}, 400, "job_class"),
    ("POST", "/api/schedules", {"job_class": "demo.echo"}, 400, "cron"),
    ("POST", "/api/schedules", {**SCHEDULE, "job_class": 5}, 400, "job_class"),
    ("POST", "/api/schedules", {**SCHEDULE, "active": "yes"}, 400, "active"),
    ("POST", "/api/schedules", {**SCHEDULE, "payload": [1]}, 400, "payload"),
    ("POST", "/api/schedules", {**SCHEDULE, "payload": None}, 400, "payload"),
    ("POST", "/api/schedules", {**SCHEDULE, "timezone": None}, 400, "timezone"),
    ("POST", "/api/schedules", {**SCHEDULE, "missed_fire_policy": 5}, 400, "missed_fire_policy"),
    ("POST", "/api/schedules", {**SCHEDULE, "missed_fire_policy": "twice"}, 422, "missed_fire_policy"),
    ("POST", "/api/schedules", {**SCHEDULE, "name": 5}, 422, "name"),
    ("POST", "/api/schedules", {**SCHEDULE, "name": "n" * 201}, 422, "name"),
    ("POST", "/api/schedules", {**SCHEDULE, "job_class": "no.such.job"}, 422, "job class"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), SCHEDULES)
def test_schedule_bad_bodies(
    client: Any, auth: Any, method: str, path: str, body: Any, status: int, field: str
) -> None:
    detail = assert_problem(send(client, method, path, body, auth("admin")), status)["detail"]
    assert field in detail


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/schedules/preview", {"cron": "* * * * *", "unknown": 1}),
        ("POST", "/api/schedules", {**SCHEDULE, "unknown": 1}),
        ("POST", "/api/schedules", {**SCHEDULE, "name": None}),
    ],
)
def test_schedule_bodies_ignore_unknown_keys_on_create(
    client: Any, auth: Any, method: str, path: str, body: Any
) -> None:
    assert send(client, method, path, body, auth("admin")).status_code in (200, 201)


@pytest.fixture()
def schedule_id(client: Any, auth: Any) -> str:
    response = client.post("/api/schedules", json=SCHEDULE, headers=auth("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    created: str = response.get_json()["id"]
    return created


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"bogus": 1}, 422, "bogus"),
        ({"active": "yes"}, 400, "active"),
        ({"cron": 5}, 400, "cron"),
        ({"payload": "x"}, 400, "payload"),
        ({"cron": "* * *"}, 422, "3 fields"),
        ({"missed_fire_policy": "twice"}, 422, "missed_fire_policy"),
    ],
)
def test_schedule_patch_bad_bodies(
    client: Any, auth: Any, schedule_id: str, body: Any, status: int, field: str
) -> None:
    response = send(client, "PATCH", f"/api/schedules/{schedule_id}", body, auth("admin"))
    assert field in assert_problem(response, status)["detail"]


def test_schedule_patch_of_an_unknown_id_is_404_whatever_the_body(client: Any, auth: Any) -> None:
    for body in ({"bogus": 1}, {"active": "yes"}, [1]):
        assert_problem(send(client, "PATCH", f"/api/schedules/{UNKNOWN_ID}", body, auth("admin")), 404)


@pytest.fixture()
def synced(app: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()


@pytest.mark.usefixtures("synced")
@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ([1], 400, "object"),
        ({"priority": "high"}, 422, "priority"),
        ({"priority": 10}, 422, "priority"),
        ({"is_active": "no"}, 422, "is_active"),
        ({"tags": "a"}, 422, "tags"),
        ({"metadata": [1]}, 422, "metadata"),
        ({"description": 5}, 422, "description"),
        ({"colour": "red"}, 422, "colour"),
    ],
)
def test_definition_patch_bad_bodies(client: Any, auth: Any, body: Any, status: int, field: str) -> None:
    response = send(client, "PATCH", "/api/definitions/demo.echo", body, auth("admin", "pin-tenant"))
    assert field in assert_problem(response, status)["detail"]


def test_definition_patch_of_an_unknown_class_is_404_for_a_json_object(client: Any, auth: Any) -> None:
    for body in ({"priority": "high"}, {"colour": "red"}):
        assert_problem(send(client, "PATCH", "/api/definitions/no.such.job", body, auth("admin")), 404)


CONTROL = [
    ("PUT", "/api/queues/default/rate-limit", [1], 400, "object"),
    ("PUT", "/api/queues/default/rate-limit", {"limit": 5}, 422, "per"),
    ("PUT", "/api/queues/default/rate-limit", {"limit": "x", "per": 1}, 422, "limit"),
    ("PUT", "/api/queues/default/rate-limit", {"limit": 5, "per": 0}, 422, "per"),
    ("PUT", "/api/queues/default/rate-limit", {"limit": 5, "per": 1, "burst": 2}, 422, "burst"),
    ("POST", "/api/admin/queue/retry", {}, 400, "queue"),
    ("POST", "/api/admin/queue/retry", {"queue": 5}, 400, "queue"),
    ("POST", "/api/admin/queue/retry", {"queue": ""}, 400, "queue"),
    ("POST", "/api/admin/queue/retry", {"queue": "default", "colour": 1}, 400, "colour"),
    ("POST", "/api/admin/queue/clear", {"queue": "default", "older_than": "soon"}, 422, "older_than"),
    ("POST", "/api/admin/queue/clear", {"queue": "default", "older_than": 5}, 422, "older_than"),
    ("POST", "/api/admin/queue/clear", {"queue": "default", "reason": "x"}, 400, "reason"),
    ("POST", "/api/queues/no-such-queue-pin/pause", {"colour": 1}, 400, "colour"),
    ("POST", "/api/queues/no-such-queue-pin/resume", [1], 400, "object"),
    ("POST", "/api/workers/no-such-host-pin/pool-grow", {"colour": 1}, 400, "colour"),
    ("POST", "/api/workers/no-such-host-pin/pool-grow", {"n": "x"}, 422, "n must be"),
    ("POST", "/api/workers/no-such-host-pin/pool-grow", {"n": 0}, 422, "n must be"),
    ("POST", "/api/workers/no-such-host-pin/add-consumer", {"queue": 5}, 422, "queue"),
    ("POST", "/api/workers/no-such-host-pin/add-consumer", {"queue": "bad queue!"}, 422, "queue"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), CONTROL)
def test_control_bad_bodies(client: Any, auth: Any, method: str, path: str, body: Any, status: int, field: str) -> None:
    assert field in assert_problem(send(client, method, path, body, auth("admin")), status)["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/queues/no-such-queue-pin/pause", {"reason": 5}),
        ("/api/queues/no-such-queue-pin/pause", {}),
        ("/api/workers/no-such-host-pin/pool-grow", {"n": "3", "reason": 5}),
        ("/api/workers/no-such-host-pin/pool-grow", None),
    ],
)
def test_control_bodies_that_pass_reach_the_lookup(client: Any, auth: Any, path: str, body: Any) -> None:
    """A reason that is not a string is ignored; `n` may be digits in a string; the body is optional."""
    assert_problem(send(client, "POST", path, body, auth("admin")), 404)


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/jobs?limit=x", "limit"),
        ("/api/jobs?limit=0", "limit"),
        ("/api/jobs?limit=", "limit"),
        ("/api/jobs?status=sleeping", "status"),
        ("/api/jobs?cursor=nonsense", "cursor"),
        ("/api/monitoring/stuck?limit=x", "limit"),
        ("/api/monitoring/slow?limit=500", "limit"),
        ("/api/monitoring/failures?limit=x", "limit"),
        ("/api/monitoring/failures?since=yesterday", "since"),
        ("/api/monitoring/performance?hours=x", "hours"),
        ("/api/monitoring/performance?hours=0", "hours"),
        ("/api/schedules?active=yes", "active"),
        (f"/api/schedules/{UNKNOWN_ID}/history?limit=x", "limit"),
    ],
)
def test_bad_query_parameters_are_422(client: Any, auth: Any, path: str, field: str) -> None:
    assert field in assert_problem(client.get(path, headers=auth("viewer")), 422)["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/jobs?status=&queue=&job_class=&cursor=", "/api/monitoring/failures?since=&job_class=&cursor="],
)
def test_empty_filters_mean_no_filter(client: Any, auth: Any, path: str) -> None:
    assert client.get(path, headers=auth("viewer")).status_code == 200


def test_problem_documents_have_exactly_the_four_members(client: Any, auth: Any) -> None:
    response = send(client, "POST", "/api/jobs/dispatch", {**ECHO, "options": {"priority": "x"}}, auth())
    assert set(assert_problem(response, 422)) == {"type", "title", "status", "detail"}
    response = send(client, "POST", "/api/jobs/dispatch", {}, auth())
    assert set(assert_problem(response, 400)) == {"type", "title", "status", "detail"}


@pytest.mark.parametrize(
    ("path", "body", "detail"),
    [
        ("/api/batches", {"jobs": [ECHO, {**ECHO, "options": {"priority": 10}}]}, "jobs[1].options.priority must be"),
        ("/api/jobs/dispatch", {**ECHO, "options": {"colour": 1, "odd key": 2}}, "options: unknown field(s) colour"),
        ("/api/jobs/dispatch", {**ECHO, "options": {"delay": "soon"}}, "options.delay must be a number"),
        ("/api/chains", {"jobs": [ECHO], "catch": {"payload": {}}}, "catch.job_class is required"),
        ("/api/batches", {"jobs": [ECHO], "finally": {"job_class": 1}}, "finally.job_class must be a string"),
        ("/api/jobs/dispatch", {**ECHO, "options": {"tags": ["a", 1]}}, "options.tags must be a list of strings"),
    ],
)
def test_details_name_the_field_by_its_path(
    client: Any, auth: Any, recording_publisher: list[Any], path: str, body: Any, detail: str
) -> None:
    """Written after validation moved to the models: the path style of app/validation.py."""
    answer = send(client, "POST", path, body, auth())
    assert detail in answer.get_json()["detail"]
