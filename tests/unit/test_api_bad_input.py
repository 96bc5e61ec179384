"""Bad input never 500s (issue 11, item 7): 422 problem+json naming the field, nothing queued.

Bodies are sent as raw JSON text, as a client would: `NaN`, `Infinity` and `1e400` are
tokens Python's json module accepts, `\\u0000` an escape PostgreSQL cannot store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from app.config import get_settings
from app.errors import ValidationError
from app.validation import check_json
from ops_ui import create_app
from tests.conftest import assert_problem


def post(client: Any, path: str, text: str, headers: dict[str, str], method: str = "POST") -> Any:
    return client.open(path, method=method, data=text, headers={**headers, "Content-Type": "application/json"})


def nested(levels: int, leaf: str = "1") -> str:
    """A JSON array nested `levels` deep: [[[1]]] is 3."""
    return "[" * levels + leaf + "]" * levels


DISPATCH_CASES = [
    ('{"job_class": "demo.echo", "options": {"delay": NaN}}', "options.delay: must be a finite number"),
    ('{"job_class": "demo.echo", "options": {"max_attempts": NaN}}', "options.max_attempts: must be a finite number"),
    ('{"job_class": "demo.echo", "options": {"timeout": Infinity}}', "options.timeout: must be a finite number"),
    ('{"job_class": "demo.echo", "options": {"unique_for": -Infinity}}', "options.unique_for: must be a finite"),
    ('{"job_class": "demo.echo", "options": {"backoff": [1, NaN]}}', "options.backoff[1]: must be a finite number"),
    ('{"job_class": "demo.echo", "options": {"priority": 1e400}}', "options.priority: must be a finite number"),
    (
        '{"job_class": "demo.echo", "payload": {"items": [{}, {}, {}, {"price": NaN}]}}',
        "payload.items[3].price: must be a finite number",
    ),
    ('{"job_class": "demo.echo", "payload": {"value": 1e400}}', "payload.value: must be a finite number"),
    ('{"job_class": "demo.echo", "payload": {"value": "a\\u0000b"}}', "payload.value: must not contain \\u0000"),
    ('{"job_class": "demo.echo", "payload": {"a\\u0000": 1}}', 'payload: key "a\\u0000" must not contain'),
    ('{"job_class": "demo.echo", "options": {"tags": ["ok", "x\\u0000"]}}', "options.tags[1]: must not contain"),
    ('{"job_class": "demo.echo\\u0000"}', "job_class: must not contain \\u0000"),
    ('{"job_class": "demo.echo", "options": {"queue": "q\\u0000"}}', "options.queue: must not contain"),
    ('{"job_class": "demo.echo", "payload": {"v": "\\ud800"}}', "payload.v: must be valid Unicode"),
    ('{"job_class": "demo.echo", "payload": {"n": ' + "9" * 5000 + "}}", "a number has too many digits"),
]


@pytest.mark.parametrize(("text", "detail"), DISPATCH_CASES)
def test_dispatch_refuses_values_nothing_can_store_with_422_naming_the_field(
    client: Any, auth: Any, recording_publisher: list[Any], text: str, detail: str
) -> None:
    response = post(client, "/api/jobs/dispatch", text, auth())
    assert detail in assert_problem(response, 422)["detail"]
    assert recording_publisher == []


def test_payload_nested_5000_levels_is_422_not_a_crash(client: Any, auth: Any, recording_publisher: list[Any]) -> None:
    text = '{"job_class": "demo.echo", "payload": {"deep": ' + nested(5000) + "}}"
    problem = assert_problem(post(client, "/api/jobs/dispatch", text, auth()), 422)
    assert "nested deeper than 64 levels" in problem["detail"]
    assert recording_publisher == []


def test_payload_depth_limit_is_exact_and_names_the_field(
    client: Any, auth: Any, recording_publisher: list[Any]
) -> None:
    # The payload object is level 1: 63 arrays inside it make 64 levels, one more is too deep.
    allowed = '{"job_class": "demo.echo", "payload": {"deep": ' + nested(63) + "}}"
    assert post(client, "/api/jobs/dispatch", allowed, auth()).status_code == 201
    too_deep = '{"job_class": "demo.echo", "payload": {"deep": ' + nested(64) + "}}"
    detail = assert_problem(post(client, "/api/jobs/dispatch", too_deep, auth()), 422)["detail"]
    assert detail.startswith("…") or detail.startswith("payload.deep")
    assert detail.endswith(": nested deeper than 64 levels")
    assert len(recording_publisher) == 1


def test_payload_depth_limit_follows_the_setting(auth: Any, recording_publisher: list[Any]) -> None:
    app = create_app({"TESTING": True}, settings=replace(get_settings(), max_payload_depth=3))
    client = app.test_client()
    body = {"job_class": "demo.echo", "payload": {"a": {"b": {"c": 1}}}}
    assert client.post("/api/jobs/dispatch", json=body, headers=auth()).status_code == 201
    body["payload"] = {"a": {"b": {"c": {}}}}
    problem = assert_problem(client.post("/api/jobs/dispatch", json=body, headers=auth()), 422)
    assert problem["detail"] == "payload.a.b.c: nested deeper than 3 levels"


@pytest.mark.parametrize(
    ("path", "text", "detail"),
    [
        (
            "/api/batches",
            '{"jobs": [{"job_class": "demo.echo"}, {"job_class": "demo.echo", "payload": {"x": NaN}}]}',
            "jobs[1].payload.x: must be a finite number",
        ),
        ("/api/batches", '{"jobs": [{"job_class": "demo.echo"}], "allow_failures": NaN}', "allow_failures: must be"),
        ("/api/batches", '{"name": "a\\u0000", "jobs": [{"job_class": "demo.echo"}]}', "name: must not contain"),
        (
            "/api/batches",
            '{"jobs": [{"job_class": "demo.echo"}], "then": {"job_class": "demo.echo", "options": {"delay": NaN}}}',
            "then.options.delay: must be a finite number",
        ),
        ("/api/chains", '{"jobs": [{"job_class": "demo.echo", "payload": {"x": -Infinity}}]}', "jobs[0].payload.x"),
        ("/api/chains", '{"jobs": [{"job_class": "demo.echo\\u0000"}]}', "jobs[0].job_class: must not contain"),
    ],
)
def test_batches_and_chains_refuse_bad_values_with_the_field_path(
    client: Any, auth: Any, recording_publisher: list[Any], path: str, text: str, detail: str
) -> None:
    assert detail in assert_problem(post(client, path, text, auth()), 422)["detail"]
    assert recording_publisher == []


def test_batch_allow_failures_past_what_sql_stores_is_422(
    client: Any, auth: Any, recording_publisher: list[Any]
) -> None:
    body = {"jobs": [{"job_class": "demo.echo"}], "allow_failures": 10**30}
    assert "allow_failures" in assert_problem(client.post("/api/batches", json=body, headers=auth()), 422)["detail"]
    assert recording_publisher == []


@pytest.mark.parametrize(
    ("method", "path", "text", "detail"),
    [
        ("POST", "/api/schedules/preview", '{"cron": "* * * * *\\u0000"}', "cron: must not contain"),
        ("POST", "/api/schedules/preview", '{"cron": "* * * * *", "timezone": NaN}', "timezone: must be a finite"),
        (
            "POST",
            "/api/schedules",
            '{"job_class": "demo.echo", "cron": "* * * * *", "payload": {"v": Infinity}}',
            "payload.v: must be a finite number",
        ),
        (
            "POST",
            "/api/schedules",
            '{"job_class": "demo.echo", "cron": "* * * * *", "payload": {"d": ' + nested(64) + "}}",
            "nested deeper than 64 levels",
        ),
        ("PATCH", "/api/definitions/demo.echo", '{"timeout": NaN}', "timeout: must be a finite number"),
        ("PUT", "/api/queues/default/rate-limit", '{"limit": 1e400, "per": 1}', "limit: must be a finite number"),
        ("POST", "/api/jobs/dispatch", '{"job_class": "demo.echo", "d": ' + nested(5000) + "}", "nested deeper"),
    ],
)
def test_every_body_gets_the_same_checks(
    client: Any, auth: Any, method: str, path: str, text: str, detail: str
) -> None:
    response = post(client, path, text, auth("admin"), method=method)
    assert detail in assert_problem(response, 422)["detail"]


def test_malformed_and_wrongly_shaped_bodies_stay_400(client: Any, auth: Any) -> None:
    assert_problem(post(client, "/api/jobs/dispatch", '{"job_class": "demo.echo", ', auth()), 400)
    assert_problem(post(client, "/api/jobs/dispatch", "[NaN]", auth()), 400)
    assert_problem(post(client, "/api/jobs/dispatch", '{"job_class": "demo.echo", "payload": [NaN]}', auth()), 422)


# -- the validator itself (also called by Job.dispatch) -------------------------------------
def test_check_json_accepts_ordinary_values() -> None:
    check_json({"a": [1, 2.5, -0.0, True, None, "é", "ok", {"b": 2**62}], "c": 1.7e308}, "payload", 3)
    check_json("plain", "name")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "delay: must be a finite number"),
        ({"k": [0, float("inf")]}, "delay.k[1]: must be a finite number"),
        ({"k": 10**400}, "delay.k: must be a finite number"),
        ({"odd key": "\x00"}, 'delay["odd key"]: must not contain \\u0000'),
        ({"a": {"b": {"c": {}}}}, "delay.a.b.c: nested deeper than 3 levels"),
        ((1, (2, (3, (4,)))), "delay[1][1][1]: nested deeper than 3 levels"),
    ],
)
def test_check_json_names_the_offending_field(value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        check_json(value, "delay", 3)
    assert str(raised.value) == message


def test_check_json_survives_a_value_deeper_than_the_stack() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ValidationError, match="nested deeper than 64 levels"):
        check_json(value, "payload", 64)


@pytest.mark.parametrize("zone", ["America", "9" * 300])
def test_a_timezone_naming_a_folder_or_too_long_is_422(client: Any, auth: Any, zone: str) -> None:
    # ZoneInfo raises OSError (IsADirectoryError, file name too long) for these, not ValueError.
    response = client.post("/api/schedules/preview", json={"cron": "* * * * *", "timezone": zone}, headers=auth())
    assert "timezone" in assert_problem(response, 422)["detail"]
