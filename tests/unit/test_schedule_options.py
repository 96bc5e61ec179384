"""Schedules with dispatch options (issue 13, item 8): API, service, console and CLI.

On in-memory twins for RedBeat and the broker (the jobs are recorded in SQL, so the row a
run or a fire created shows the options it was dispatched with). A real beat and worker:
tests/integration/test_schedules_beat.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from app.backends.current import Backends
from app.config import get_settings
from app.db import db, session_scope
from app.errors import ValidationError
from app.kernel.dispatching import DispatchSpec, resolve
from app.models import AuditLog, JobExecution, JobSchedule
from app.schedules.firing import Dispatcher, fire
from app.schedules.service import JobSchedulerService
from tests.conftest import assert_problem

BODY = {"job_class": "demo.echo", "cron": "30 2 * * *", "payload": {"value": 1}}
OPTIONS = {"queue": "reports", "priority": 8, "timeout": 120, "max_attempts": 4, "tags": ["nightly", "ops"]}


def create(client: Any, auth: Any, **changes: Any) -> dict[str, Any]:
    response = client.post("/api/schedules", json={**BODY, **changes}, headers=auth("admin"))
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def assert_dispatched_with_options(job: JobExecution | None) -> None:
    assert job is not None
    assert (job.queue, job.priority, job.max_attempts) == ("reports", 8, 4)
    assert job.message is not None and job.message["tl"][1] == 120  # the soft time limit: the timeout
    assert {"nightly", "ops"} <= set(job.tags or [])


@pytest.mark.usefixtures("twins", "no_redis")
class TestApi:
    def test_options_are_returned_and_used_by_run_now(self, client: Any, auth: Any) -> None:
        schedule = create(client, auth, options=OPTIONS)
        assert schedule["options"] == OPTIONS
        got = client.get(f"/api/schedules/{schedule['id']}", headers=auth("viewer")).get_json()
        assert got["options"] == OPTIONS
        listed = client.get("/api/schedules", headers=auth("viewer")).get_json()["items"]
        assert next(item for item in listed if item["id"] == schedule["id"])["options"] == OPTIONS
        ran = client.post(f"/api/schedules/{schedule['id']}/run", headers=auth("operator")).get_json()
        assert_dispatched_with_options(db.session.get(JobExecution, ran["job_id"]))

    def test_a_schedule_without_options_answers_an_empty_object(self, client: Any, auth: Any) -> None:
        assert create(client, auth)["options"] == {}

    def test_patch_replaces_the_options_and_null_clears_them(self, client: Any, auth: Any) -> None:
        schedule = create(client, auth, options=OPTIONS)
        path = f"/api/schedules/{schedule['id']}"
        changed = client.patch(path, json={"options": {"priority": 2}}, headers=auth("admin"))
        assert changed.status_code == 200 and changed.get_json()["options"] == {"priority": 2}
        untouched = client.patch(path, json={"name": "renamed"}, headers=auth("admin")).get_json()
        assert untouched["options"] == {"priority": 2}
        cleared = client.patch(path, json={"options": None}, headers=auth("admin")).get_json()
        assert cleared["options"] == {}
        assert db.session.get(JobSchedule, schedule["id"]).options is None  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("options", "detail"),
        [
            ({"priority": 10}, "priority"),
            ({"priority": "high"}, "priority"),
            ({"timeout": 0}, "timeout must be at least 1"),
            ({"max_attempts": 101}, "max_attempts must be at most 100"),
            ({"queue": "no spaces!"}, "queue must be"),
            ({"tags": [1]}, "tags"),
            ({"depends_on": ["x"]}, "depends_on is not a schedule option"),
            ({"unique_for": 60}, "unique_for is not a schedule option"),
            ({"unique_id": "a", "unique_for": 5}, "not a schedule option"),
            ({"bogus": 1}, "bogus"),
            ({"delay": -1}, "delay must be at least 0"),
            ({"backoff": [-5]}, "backoff"),
        ],
    )
    def test_bad_options_are_refused_and_nothing_is_saved(
        self, client: Any, auth: Any, options: dict[str, Any], detail: str
    ) -> None:
        before = db.session.query(JobSchedule).count()
        response = client.post("/api/schedules", json={**BODY, "options": options}, headers=auth("admin"))
        assert response.status_code in (400, 422)
        assert detail in assert_problem(response, response.status_code)["detail"]
        assert db.session.query(JobSchedule).count() == before
        schedule = create(client, auth)
        patched = client.patch(f"/api/schedules/{schedule['id']}", json={"options": options}, headers=auth("admin"))
        assert patched.status_code in (400, 422) and detail in patched.get_json()["detail"]

    @pytest.mark.parametrize("options", [[], "fast", 3])
    def test_options_of_the_wrong_shape_are_400(self, client: Any, auth: Any, options: Any) -> None:
        response = client.post("/api/schedules", json={**BODY, "options": options}, headers=auth("admin"))
        assert "options" in assert_problem(response, 400)["detail"]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        options=st.dictionaries(
            st.sampled_from([*OPTIONS, "delay", "backoff", "expires", "encrypted", "depends_on", "x"]),
            st.none()
            | st.booleans()
            | st.integers(-(10**12), 10**12)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(max_size=5)
            | st.lists(st.integers(-5, 10**9) | st.text(max_size=3), max_size=3),
            max_size=4,
        )
    )
    def test_any_options_answer_201_or_4xx_never_500(self, client: Any, auth: Any, options: dict[str, Any]) -> None:
        response = client.post("/api/schedules", json={**BODY, "options": options}, headers=auth("admin"))
        assert response.status_code in (201, 400, 422), response.get_data(as_text=True)


@pytest.mark.usefixtures("twins", "no_redis")
def test_the_service_refuses_what_a_dispatch_refuses_with_the_same_words(app: Any) -> None:
    from app.schedules.service import default_service

    service = default_service(db.session)
    info = service.dispatcher.registry.get("demo.echo")
    cases = (({"priority": 12}, "priority"), ({"timeout": 0}, "timeout_s"), ({"max_attempts": 0}, "max_attempts"))
    for options, field in cases:
        with pytest.raises(ValidationError) as scheduled:
            service.schedule_job("demo.echo", "0 1 * * *", payload={}, tenant_id="svc", options=options)
        db.session.rollback()
        with pytest.raises(ValidationError) as dispatched:
            resolve(DispatchSpec("demo.echo", **{field: next(iter(options.values()))}), info, None, get_settings())
        assert str(scheduled.value) == str(dispatched.value)


@pytest.fixture()
def service(redis_client: Any, twins: Backends) -> Iterator[JobSchedulerService]:
    with session_scope() as session:
        dispatcher = Dispatcher(twins.registry, twins.publisher, get_settings())
        yield JobSchedulerService(session, twins.schedules, dispatcher, redis_client)  # type: ignore[arg-type]


def test_each_fire_dispatches_with_the_options_read_from_the_row(service: JobSchedulerService) -> None:
    now = datetime(2030, 1, 7, 12, 0, 5, tzinfo=UTC)
    row = service.schedule_job(
        "demo.echo", "0 * * * *", "UTC", {}, tenant_id="fire-options", options=OPTIONS, now=now - timedelta(hours=1)
    )
    first = fire(service.session, service.store, service.redis, row.id, row.next_run_at, service.dispatcher, now)
    assert_dispatched_with_options(service.session.get(JobExecution, first.job_id))
    # An edit applies from the next fire: the row is read at each fire.
    service.update_schedule(row.id, None, {"options": {"queue": "other", "priority": 1}})
    later = now + timedelta(hours=1)
    second = fire(service.session, service.store, service.redis, row.id, first.next_tick, service.dispatcher, later)
    job = service.session.get(JobExecution, second.job_id)
    assert job is not None and (job.queue, job.priority) == ("other", 1)


@pytest.mark.usefixtures("twins")  # the console's login throttle uses Redis
class TestConsole:
    FORM = {
        "cron": "30 2 * * *",
        "timezone": "UTC",
        "job_class": "demo.echo",
        "payload": "{}",
        "active": "y",
        "missed_fire_policy": "skip",
    }
    FIELDS = {"queue": "reports", "priority": "8", "timeout": "120", "max_attempts": "4", "tags": "nightly, ops"}

    def test_the_form_saves_options_audits_and_prefills_them_on_edit(self, console: Any, unique: str) -> None:
        admin = console(role="admin", tenant=unique)
        page = admin.get("/schedules/new").get_data(as_text=True)
        for key in self.FIELDS:
            assert f'id="{key}"' in page and f'for="{key}"' in page
        response = admin.post("/schedules/new", data={**self.FORM, **self.FIELDS})
        assert response.status_code == 302, response.get_data(as_text=True)
        row = db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique))
        assert row is not None and row.options == OPTIONS
        audit = db.session.scalar(select(AuditLog).where(AuditLog.target_id == row.id))
        assert audit is not None and audit.action == "schedule.create"
        detail = admin.get(f"/schedules/{row.id}").get_data(as_text=True)
        assert "queue=reports" in detail and "priority=8" in detail
        edit = admin.get(f"/schedules/{row.id}/edit").get_data(as_text=True)
        assert 'value="reports"' in edit and 'value="nightly, ops"' in edit
        saved = admin.post(f"/schedules/{row.id}/edit", data={**self.FORM, **self.FIELDS, "priority": "", "tags": ""})
        assert saved.status_code == 302
        db.session.expire_all()
        assert db.session.get(JobSchedule, row.id).options == {"queue": "reports", "timeout": 120, "max_attempts": 4}  # type: ignore[union-attr]

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("priority", "12", "priority must be an integer from 0 to 9"),
            ("priority", "high", "priority must be a whole number"),
            ("timeout", "0", "timeout must be at least 1"),
            ("max_attempts", "500", "max_attempts must be at most 100"),
            ("queue", "bad queue", "queue must be"),
        ],
    )
    def test_a_bad_option_is_shown_at_its_field_and_nothing_is_saved(
        self, console: Any, unique: str, field: str, value: str, message: str
    ) -> None:
        response = console(role="admin", tenant=unique).post("/schedules/new", data={**self.FORM, field: value})
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert f'id="{field}-error"' in page and message in page and "Nothing was saved" in page
        assert db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique)) is None

    def test_operators_cannot_post_the_form_and_csrf_is_required(self, console: Any, unique: str) -> None:
        form = {**self.FORM, **self.FIELDS}
        assert console(role="operator", tenant=unique).post("/schedules/new", data=form).status_code == 403
        refused = console(role="admin", tenant=unique).post("/schedules/new", data=form, csrf=False)
        assert refused.status_code in (400, 422)
        assert db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique)) is None


@pytest.mark.usefixtures("twins", "no_redis")
class TestCli:
    def test_add_takes_options_and_list_shows_them(self, app: Any, unique: str) -> None:
        runner = app.test_cli_runner()
        added = runner.invoke(
            args=["schedules", "add", "--job-class", "demo.echo", "--cron", "0 3 * * *", "--tenant", unique,
                  "--queue", "reports", "--priority", "8", "--timeout", "120", "--max-attempts", "4",
                  "--tag", "nightly", "--tag", "ops", "--options", '{"backoff": [10, 60]}']
        )  # fmt: skip
        assert added.exit_code == 0, added.output
        schedule_id = added.output.strip().splitlines()[-1]
        assert db.session.get(JobSchedule, schedule_id).options == {**OPTIONS, "backoff": [10, 60]}  # type: ignore[union-attr]
        listed = runner.invoke(args=["schedules", "list", "--tenant", unique, "--json"])
        assert json.loads(listed.output)[0]["options"]["queue"] == "reports"
        assert '"priority": 8' in runner.invoke(args=["schedules", "list", "--tenant", unique]).output

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["--priority", "12"], "priority must be an integer from 0 to 9"),
            (["--max-attempts", "0"], "max_attempts must be at least 1"),
            (["--queue", "a b"], "queue must be"),
            (["--options", '{"depends_on": ["x"]}'], "depends_on is not a schedule option"),
            (["--options", "[1]"], "--options must be a JSON object"),
            (["--priority", "x"], "is not a valid integer"),
        ],
    )
    def test_bad_options_exit_non_zero_with_one_readable_line(
        self, app: Any, unique: str, args: list[str], message: str
    ) -> None:
        result = app.test_cli_runner().invoke(
            args=["schedules", "add", "--job-class", "demo.echo", "--cron", "0 3 * * *", "--tenant", unique, *args]
        )
        assert result.exit_code == 2
        assert message in result.output and "Traceback" not in result.output
        assert db.session.scalar(select(JobSchedule).where(JobSchedule.tenant_id == unique)) is None
