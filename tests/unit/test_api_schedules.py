"""Schedules API (API.md) and `flask schedules` CLI: shapes, errors, roles, tenancy, entries in step.

On in-memory twins (app.backends.twins): the schedule store stands in for RedBeat and the
publisher for the broker. RedBeat's own format and firing: tests/integration/test_schedules_beat.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.backends.current import Backends
from app.backends.twins import MemoryScheduleStore
from app.db import db
from app.kernel.ports import PAUSED_SCORE
from app.models import JobExecution
from tests.conftest import assert_problem

pytestmark = pytest.mark.usefixtures("twins", "no_redis")

BODY = {"job_class": "demo.echo", "cron": "30 2 * * *", "timezone": "Europe/Berlin", "payload": {"value": 1}}


@pytest.fixture()
def store(twins: Backends) -> MemoryScheduleStore:
    store = twins.schedules
    assert isinstance(store, MemoryScheduleStore)
    return store


def create(client: Any, auth: Any, **changes: Any) -> dict[str, Any]:
    response = client.post("/api/schedules", json={**BODY, **changes}, headers=auth("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def test_preview_describes_and_lists_five_runs_in_the_zone(client: Any, auth: Any) -> None:
    response = client.post(
        "/api/schedules/preview", json={"cron": "0 2 * * 1", "timezone": "America/New_York"}, headers=auth("viewer")
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["description"] == "At 02:00, only on Monday"
    assert len(body["next_runs"]) == 5
    assert all(run.endswith(("-04:00", "-05:00")) and "T02:00:00" in run for run in body["next_runs"])


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"cron": "61 * * * *", "timezone": "UTC"}, 422, "out of range"),
        ({"cron": "0 2 * * *", "timezone": "Europe/Atlantis"}, 422, "IANA"),
        ({"cron": "0 2 * *"}, 422, "4 fields"),
        ({"timezone": "UTC"}, 400, "cron is required"),
        ({"cron": 5}, 400, "cron must be"),
    ],
)
def test_preview_bad_input(client: Any, auth: Any, body: dict[str, Any], status: int, detail: str) -> None:
    response = client.post("/api/schedules/preview", json=body, headers=auth("viewer"))
    assert detail in assert_problem(response, status)["detail"]


def test_create_answers_the_contract_shape_and_writes_the_redbeat_entry(
    client: Any, auth: Any, store: MemoryScheduleStore
) -> None:
    body = create(client, auth, active=True)
    for key in ("id", "job_class", "cron", "timezone", "active", "description", "next_run_at", "last_run_at"):
        assert key in body
    assert body["job_class"] == "demo.echo" and body["cron"] == "30 2 * * *" and body["active"] is True
    assert body["description"] == "At 02:30" and body["last_run_at"] is None
    entry = store.read(body["id"])
    assert entry is not None and entry.enabled and entry.tick is not None
    assert entry.tick.isoformat() == body["next_run_at"]
    assert entry.score == int(entry.tick.timestamp())


@pytest.mark.parametrize(
    ("changes", "status", "detail"),
    [
        ({"cron": "* * * * * * *"}, 422, "7 fields"),
        ({"timezone": "Nowhere/Land"}, 422, "IANA"),
        ({"job_class": "no.such.job"}, 422, "unknown job class"),
        ({"job_class": "celeriac.schedules.fire"}, 422, "unknown job class"),
        ({"missed_fire_policy": "twice"}, 422, "skip, run_once"),
        ({"payload": [1]}, 400, "payload must be"),
        ({"active": "yes"}, 400, "active must be"),
    ],
)
def test_create_bad_input(client: Any, auth: Any, changes: dict[str, Any], status: int, detail: str) -> None:
    response = client.post("/api/schedules", json={**BODY, **changes}, headers=auth("admin"))
    assert detail in assert_problem(response, status)["detail"]


def test_missing_job_class_is_400(client: Any, auth: Any) -> None:
    assert_problem(client.post("/api/schedules", json={"cron": "0 2 * * *"}, headers=auth("admin")), 400)


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("post", "/api/schedules", "operator"),
        ("patch", "/api/schedules/{id}", "operator"),
        ("delete", "/api/schedules/{id}", "operator"),
        ("post", "/api/schedules/{id}/pause", "operator"),
        ("post", "/api/schedules/{id}/resume", "operator"),
        ("post", "/api/schedules/{id}/run", "viewer"),
    ],
)
def test_roles(client: Any, auth: Any, method: str, path: str, role: str) -> None:
    schedule = create(client, auth)
    response = getattr(client, method)(path.format(id=schedule["id"]), json=BODY, headers=auth(role))
    assert_problem(response, 403)


def test_no_token_is_401(client: Any) -> None:
    assert_problem(client.get("/api/schedules"), 401)
    assert_problem(client.post("/api/schedules/preview", json={"cron": "* * * * *"}), 401)


def test_another_tenants_schedule_is_404(client: Any, auth: Any) -> None:
    schedule = create(client, auth)
    other = auth("admin", tenant="other-tenant")
    for method, path in (
        ("get", "/api/schedules/{id}"),
        ("patch", "/api/schedules/{id}"),
        ("delete", "/api/schedules/{id}"),
        ("post", "/api/schedules/{id}/run"),
        ("post", "/api/schedules/{id}/pause"),
        ("get", "/api/schedules/{id}/history"),
    ):
        response = getattr(client, method)(path.format(id=schedule["id"]), json={}, headers=other)
        assert_problem(response, 404)
    listed = client.get("/api/schedules", headers=auth("viewer", tenant="other-tenant")).get_json()["items"]
    assert schedule["id"] not in {item["id"] for item in listed}


def test_viewer_lists_and_reads(client: Any, auth: Any) -> None:
    schedule = create(client, auth)
    listed = client.get("/api/schedules", headers=auth("viewer")).get_json()["items"]
    assert schedule["id"] in {item["id"] for item in listed}
    got = client.get(f"/api/schedules/{schedule['id']}", headers=auth("viewer")).get_json()
    assert got == schedule | {"updated_at": got["updated_at"]}


def test_patch_moves_the_next_run_and_the_entry(client: Any, auth: Any, store: MemoryScheduleStore) -> None:
    schedule = create(client, auth)
    response = client.patch(
        f"/api/schedules/{schedule['id']}", json={"cron": "0 4 * * *", "timezone": "UTC"}, headers=auth("admin")
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (
        body["cron"] == "0 4 * * *" and body["description"] == "At 04:00" and "T04:00:00+00:00" in body["next_run_at"]
    )
    entry = store.read(schedule["id"])
    assert entry is not None and entry.tick is not None and entry.tick.isoformat() == body["next_run_at"]
    bad = client.patch(f"/api/schedules/{schedule['id']}", json={"bogus": 1}, headers=auth("admin"))
    assert "unknown field" in assert_problem(bad, 422)["detail"]


def test_pause_resume_and_delete_keep_redbeat_in_step(client: Any, auth: Any, store: MemoryScheduleStore) -> None:
    schedule = create(client, auth)
    paused = client.post(f"/api/schedules/{schedule['id']}/pause", headers=auth("admin")).get_json()
    assert paused["active"] is False and paused["next_run_at"] is None
    entry = store.read(schedule["id"])
    assert entry is not None and not entry.enabled and entry.score == PAUSED_SCORE
    resumed = client.post(f"/api/schedules/{schedule['id']}/resume", headers=auth("admin")).get_json()
    assert resumed["active"] is True and resumed["next_run_at"]
    assert store.read(schedule["id"]) is not None
    assert client.delete(f"/api/schedules/{schedule['id']}", headers=auth("admin")).status_code == 204
    assert store.read(schedule["id"]) is None
    assert_problem(client.get(f"/api/schedules/{schedule['id']}", headers=auth("viewer")), 404)


def test_run_dispatches_a_job_linked_to_the_schedule(client: Any, auth: Any) -> None:
    schedule = create(client, auth)
    response = client.post(f"/api/schedules/{schedule['id']}/run", headers=auth("operator"))
    assert response.status_code == 201
    body = response.get_json()
    assert body["job_id"] == body["id"] and body["status"] == "pending"
    job = db.session.get(JobExecution, body["job_id"])
    assert job is not None and job.schedule_id == schedule["id"] and job.tenant_id == "acme"
    assert job.payload == {"value": 1}
    history = client.get(f"/api/schedules/{schedule['id']}/history", headers=auth("viewer")).get_json()
    assert history["counts"]["runs"] == 1 and history["runs"][0]["id"] == body["job_id"]
    after = client.get(f"/api/schedules/{schedule['id']}", headers=auth("viewer")).get_json()
    assert after["last_run_at"] is not None
    assert_problem(client.get(f"/api/schedules/{schedule['id']}/history?limit=0", headers=auth("viewer")), 422)


def test_openapi_lists_the_schedule_paths(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/schedules"])
    assert {"get", "patch", "delete"} <= set(paths["/api/schedules/{schedule_id}"])
    for path in ("preview", "{schedule_id}/run", "{schedule_id}/pause", "{schedule_id}/resume"):
        assert f"/api/schedules/{path}" in paths
    assert "/api/schedules/{schedule_id}/history" in paths


def test_cli_add_list_pause_resume_run_remove(app: Any, store: MemoryScheduleStore) -> None:
    runner = app.test_cli_runner()
    added = runner.invoke(
        args=["schedules", "add", "--job-class", "demo.echo", "--cron", "0 3 * * *", "--timezone", "Asia/Tokyo",
              "--tenant", "cli-tenant", "--payload", '{"value": 2}']
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    schedule_id = added.output.strip().splitlines()[-1]
    assert store.read(schedule_id) is not None
    listed = runner.invoke(args=["schedules", "list", "--tenant", "cli-tenant"])
    assert schedule_id in listed.output and "Asia/Tokyo" in listed.output and "active" in listed.output
    assert runner.invoke(args=["schedules", "pause", schedule_id]).exit_code == 0
    assert "paused" in runner.invoke(args=["schedules", "list", "--tenant", "cli-tenant"]).output
    assert runner.invoke(args=["schedules", "resume", schedule_id]).exit_code == 0
    ran = runner.invoke(args=["schedules", "run", schedule_id])
    assert ran.exit_code == 0 and "dispatched: job" in ran.output
    assert runner.invoke(args=["schedules", "remove", schedule_id]).exit_code == 0
    assert store.read(schedule_id) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "--job-class", "demo.echo", "--cron", "99 * * * *"], "out of range"),
        (["add", "--job-class", "demo.echo", "--cron", "0 1 * * *", "--timezone", "Moon/Base"], "IANA"),
        (["add", "--job-class", "demo.echo", "--cron", "0 1 * * *", "--payload", "nope"], "JSON object"),
        (["pause", "00000000-0000-0000-0000-000000000000"], "no schedule"),
        (["preview", "1 2 3"], "3 fields"),
    ],
)
def test_cli_errors_are_one_readable_line(app: Any, args: list[str], message: str) -> None:
    result = app.test_cli_runner().invoke(args=["schedules", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
