"""Clearing a queue (app.services.queue_clear) against real Redis lists, through the API
(`POST /api/queues/{name}/clear`) and the console's queue page (count first, CSRF, audited)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app import redis_keys
from app.backends.current import backends
from app.db import db
from app.models import AuditLog, JobExecution
from app.monitoring.queue_stats import broker_depth, broker_queue_keys
from app.services import queue_clear
from tests.conftest import assert_problem, page_csrf_token
from tests.job_rows import add_job

pytestmark = [pytest.mark.redis]


def push(redis_client: Any, queue: str, job_id: str | None, step: int = 0, tenant: str | None = None) -> bytes:
    """A message as kombu's Redis transport keeps it, on the priority sub-list `step`."""
    headers: dict[str, Any] = {"id": job_id, "task": "demo.echo"}
    if tenant is not None:
        headers["celeriac"] = {"tenant": tenant, "max_attempts": 1}
    raw = json.dumps(
        {"body": "", "headers": headers, "properties": {"priority": step, "delivery_tag": str(uuid.uuid4())}}
    )
    redis_client.lpush(broker_queue_keys(queue)[step], raw)
    return raw.encode()


def waiting(tenant: str, queue: str, redis_client: Any, step: int = 0) -> str:
    """A pending job of `tenant` with its message in `queue`."""
    job_id = add_job(tenant, "pending", queue=queue)
    push(redis_client, queue, job_id, step, tenant)
    return job_id


def row(job_id: str) -> JobExecution:
    db.session.expire_all()
    found = db.session.get(JobExecution, job_id)
    assert found is not None
    return found


def run_clear(redis_client: Any, queue: str, tenant: str | None = None, **options: Any) -> queue_clear.ClearOutcome:
    return queue_clear.clear(
        db.session, redis_client, backends().canceller, queue, tenant, default_tenant="default", **options
    )


def test_every_priority_list_is_emptied_and_the_jobs_end_cancelled_with_the_reason(
    app: Any, redis_client: Any, unique: str
) -> None:
    queue, tenant = f"clear-{unique}", f"t{unique}"
    jobs = [waiting(tenant, queue, redis_client, step) for step in (0, 4, 9)]
    push(redis_client, queue, None, 2)  # a message no job row describes (another producer's)
    assert queue_clear.preview(db.session, redis_client, queue, None, "default").messages == 4

    outcome = run_clear(redis_client, queue, reason="bad deploy")

    assert (outcome.removed, outcome.cancelled, outcome.held, outcome.truncated) == (4, 3, 0, False)
    assert broker_depth(redis_client, queue) == 0
    for job_id in jobs:
        assert (row(job_id).status, row(job_id).error_message) == ("cancelled", f"queue {queue} cleared: bad deploy")
        assert redis_client.exists(redis_keys.cancelled(job_id))  # a republished copy is skipped


def test_a_tenant_clears_its_own_messages_and_the_others_keep_their_places(
    app: Any, redis_client: Any, unique: str
) -> None:
    queue, mine, theirs = f"clear-{unique}", f"a{unique}", f"b{unique}"
    order = [waiting(mine if n % 2 else theirs, queue, redis_client) for n in range(7)]
    key = broker_queue_keys(queue)[0]
    assert queue_clear.preview(db.session, redis_client, queue, mine, "default").messages == 3

    outcome = run_clear(redis_client, queue, mine)

    assert (outcome.removed, outcome.cancelled) == (3, 3)
    left = [json.loads(raw)["headers"]["id"] for raw in reversed(redis_client.lrange(key, 0, -1))]
    assert left == [job_id for n, job_id in enumerate(order) if n % 2 == 0]
    assert {row(job_id).status for n, job_id in enumerate(order) if n % 2 == 0} == {"pending"}


def test_jobs_held_for_a_long_delay_are_cleared_too(app: Any, redis_client: Any, unique: str) -> None:
    queue, tenant = f"clear-{unique}", f"t{unique}"
    due = datetime.now(UTC) + timedelta(hours=2)
    held = add_job(tenant, "pending", queue=queue, due_at=due, eta=due)
    redis_client.zadd(redis_keys.SCHEDULED, {held: due.timestamp()})
    assert queue_clear.preview(db.session, redis_client, queue, tenant, "default").held == 1

    outcome = run_clear(redis_client, queue, tenant)

    assert (outcome.held, outcome.cleared, outcome.cancelled) == (1, 1, 1)
    assert row(held).status == "cancelled"
    assert redis_client.zscore(redis_keys.SCHEDULED, held) is None


def test_a_message_a_worker_takes_meanwhile_runs_and_a_finished_jobs_stray_copy_is_only_removed(
    app: Any, redis_client: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, tenant = f"clear-{unique}", f"t{unique}"
    taken = waiting(tenant, queue, redis_client)  # front of the line: a worker takes it first
    done = add_job(tenant, "completed", queue=queue)
    push(redis_client, queue, done, 0, tenant)
    key = broker_queue_keys(queue)[0]
    read = queue_clear._Owners.owned

    def worker_takes_first(self: Any, raws: Any) -> Any:
        if redis_client.llen(key) == 2:
            redis_client.rpop(key)
        return read(self, raws)

    monkeypatch.setattr(queue_clear._Owners, "owned", worker_takes_first)
    outcome = run_clear(redis_client, queue)

    assert (outcome.removed, outcome.cancelled) == (1, 0)
    assert row(taken).status == "pending" and row(done).status == "completed"


def test_a_time_budget_stops_between_chunks_and_says_so(
    app: Any, redis_client: Any, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, tenant = f"clear-{unique}", f"t{unique}"
    monkeypatch.setattr(queue_clear, "CHUNK", 2)
    for _ in range(5):
        waiting(tenant, queue, redis_client)
    outcome = run_clear(redis_client, queue, time_budget_s=0)
    assert (outcome.removed, outcome.truncated) == (2, True)
    assert "clear again" in outcome.message()
    assert run_clear(redis_client, queue).removed == 3


# --- POST /api/queues/{name}/clear ---


def test_api_clears_the_callers_tenants_jobs_and_audits(client: Any, auth: Any, redis_client: Any, unique: str) -> None:
    queue, other = f"clear-{unique}", f"other{unique}"
    mine = [waiting("acme", queue, redis_client) for _ in range(2)]
    theirs = waiting(other, queue, redis_client)

    answer = client.post(f"/api/queues/{queue}/clear", json={"reason": "stale"}, headers=auth("admin"))

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"cleared": 2, "cancelled": 2, "truncated": False}
    assert [row(job_id).status for job_id in mine] == ["cancelled", "cancelled"]
    assert row(theirs).status == "pending" and broker_depth(redis_client, queue) == 1
    entry = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue)).one()
    assert (entry.action, entry.tenant_id, entry.reason) == ("queue.clear", "acme", "stale")
    assert entry.actor.startswith("token:") and entry.after["cleared"] == 2


def test_api_clear_refusals_are_problems(client: Any, auth: Any, redis_client: Any, unique: str) -> None:
    queue = f"clear-{unique}"
    job_id = waiting("acme", queue, redis_client)
    assert_problem(client.post(f"/api/queues/{queue}/clear", headers=auth("operator")), 403)
    assert_problem(client.post(f"/api/queues/nothing-{unique}/clear", headers=auth("admin")), 404)
    assert_problem(client.post(f"/api/queues/{queue}/clear", json={"colour": 1}, headers=auth("admin")), 400)
    assert row(job_id).status == "pending" and broker_depth(redis_client, queue) == 1


def test_openapi_describes_the_clear(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    described = paths["/api/queues/{name}/clear"]["post"]
    assert "200" in described["responses"] and "403" in described["responses"]


# --- The console's queue page ---


def test_console_shows_the_count_first_then_clears_with_csrf_and_audits(
    console: Any, redis_client: Any, unique: str
) -> None:
    queue = f"clear-{unique}"
    jobs = [waiting("acme", queue, redis_client, step) for step in (0, 5, 5)]
    admin = console("admin")
    page = admin.get(f"/queues/{queue}").get_data(as_text=True)
    assert f"/queues/{queue}/clear" in page and "Clear queue" in page

    preview = admin.get(f"/queues/{queue}/clear")
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert 'id="clear-count">3<' in html and "Other tenants' jobs in this queue are left alone" in html
    assert broker_depth(redis_client, queue) == 3  # the preview removes nothing

    assert admin.post(f"/queues/{queue}/clear", {"reason": "stuck"}, csrf=False).status_code == 400
    done = admin.post(f"/queues/{queue}/clear", {"reason": "stuck"}, follow_redirects=True)
    assert done.status_code == 200 and f"Queue {queue}: cleared 3" in done.get_data(as_text=True)
    assert {row(job_id).status for job_id in jobs} == {"cancelled"}
    entry = db.session.scalars(select(AuditLog).where(AuditLog.target_id == queue)).one()
    assert (entry.action, entry.actor, entry.reason) == ("queue.clear", f"user:{admin.user_id}", "stuck")


def test_console_clear_is_for_admins_only(console: Any, redis_client: Any, unique: str) -> None:
    queue = f"clear-{unique}"
    waiting("acme", queue, redis_client)
    operator = console("operator")
    assert "Clear queue" not in operator.get(f"/queues/{queue}").get_data(as_text=True)
    assert operator.get(f"/queues/{queue}/clear").status_code == 403
    token = page_csrf_token(operator.get(f"/queues/{queue}").get_data(as_text=True))
    assert operator.post(f"/queues/{queue}/clear", {"csrf_token": token}, csrf=False).status_code == 403
    assert broker_depth(redis_client, queue) == 1
