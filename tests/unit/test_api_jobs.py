"""The Jobs API's contract: status codes, problem+json, and nothing enqueued on rejection."""

from __future__ import annotations

import io
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from app.db import db
from app.models import ExecutionStatus, JobDefinition, JobExecution
from app.monitoring.queue_stats import broker_depth
from tests.conftest import assert_problem


def count_rows() -> int:
    return int(db.session.scalar(select(func.count()).select_from(JobExecution)) or 0)


@pytest.fixture()
def quiet_queue(unique: str) -> str:
    """A queue no worker consumes, so its depth shows exactly what the API enqueued."""
    return f"q-{unique}"


def test_healthz_needs_no_auth(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_dispatch_returns_201_and_job_is_pending_at_once(
    client: Any, auth: Any, quiet_queue: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {
        "job_class": "demo.echo",
        "payload": {"value": 1},
        "options": {"queue": quiet_queue, "priority": 7, "tags": ["a"], "max_attempts": 4},
    }
    response = client.post("/api/jobs/dispatch", json=body, headers=headers)
    assert response.status_code == 201
    created = response.get_json()
    assert created["status"] == "pending" and created["job_class"] == "demo.echo"
    assert created["queue"] == quiet_queue
    job = client.get(f"/api/jobs/{created['id']}", headers=headers).get_json()
    assert job["status"] == "pending"
    assert job["priority"] == 7 and job["max_attempts"] == 4 and job["tags"] == ["a"]
    assert job["tenant_id"] == "acme" and job["payload"] == {"value": 1}
    for key in (
        "attempts",
        "result",
        "error_message",
        "exception_trace",
        "worker_id",
        "execution_time_ms",
        "memory_usage_mb",
        "batch_id",
        "created_at",
        "started_at",
        "completed_at",
        "failed_at",
    ):
        assert key in job
    assert broker_depth(redis_client, quiet_queue) == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("{not json", 400),
        ("[1, 2]", 400),
        ('{"payload": {}}', 400),
        ('{"job_class": "demo.echo", "payload": [1]}', 400),
        ('{"job_class": "demo.echo", "options": 5}', 400),
        ('{"job_class": "no.such.job"}', 422),
        ('{"job_class": "demo.echo", "options": {"delay": -1}}', 422),
        ('{"job_class": "demo.echo", "options": {"delay": 100000}}', 422),
        ('{"job_class": "demo.echo", "options": {"priority": 10}}', 422),
        ('{"job_class": "demo.echo", "options": {"priority": -1}}', 422),
        ('{"job_class": "demo.echo", "options": {"priority": "high"}}', 422),
        ('{"job_class": "demo.echo", "options": {"timeout": 0}}', 422),
        ('{"job_class": "demo.echo", "options": {"queue": "bad queue!"}}', 422),
        ('{"job_class": "demo.echo", "options": {"colour": "red"}}', 422),
        ('{"job_class": "demo.echo", "options": {"encrypted": true}}', 422),
    ],
)
def test_rejected_dispatch_enqueues_nothing(
    client: Any, auth: Any, recording_publisher: list[Any], body: str, status: int
) -> None:
    headers = {**auth("operator"), "Content-Type": "application/json"}
    rows_before = count_rows()
    response = client.post("/api/jobs/dispatch", data=body, headers=headers)
    assert_problem(response, status)
    assert count_rows() == rows_before
    assert recording_publisher == []


def test_missing_and_unknown_tokens_are_401(client: Any) -> None:
    assert_problem(client.get("/api/jobs"), 401)
    assert_problem(client.get("/api/jobs", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(client.post("/api/jobs/dispatch", json={"job_class": "demo.echo"}), 401)


def test_viewer_may_read_but_not_dispatch(client: Any, auth: Any) -> None:
    headers = auth("viewer")
    assert client.get("/api/jobs", headers=headers).status_code == 200
    rows_before = count_rows()
    assert_problem(client.post("/api/jobs/dispatch", json={"job_class": "demo.echo"}, headers=headers), 403)
    assert count_rows() == rows_before


def test_body_over_one_mebibyte_is_413(client: Any, auth: Any) -> None:
    rows_before = count_rows()
    big = '{"job_class": "demo.echo", "payload": {"value": "' + "x" * (1024 * 1024) + '"}}'
    response = client.post(
        "/api/jobs/dispatch", data=big, headers={**auth("operator"), "Content-Type": "application/json"}
    )
    assert_problem(response, 413)
    assert count_rows() == rows_before


def test_inactive_definition_is_422(client: Any, auth: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()
    definition = db.session.query(JobDefinition).filter_by(job_class="demo.sleep").one()
    definition.is_active = False
    db.session.commit()
    rows_before = count_rows()
    try:
        response = client.post("/api/jobs/dispatch", json={"job_class": "demo.sleep"}, headers=auth())
        assert "inactive" in assert_problem(response, 422)["detail"]
        assert count_rows() == rows_before
    finally:
        definition.is_active = True
        db.session.commit()


def _insert(status: ExecutionStatus, tenant: str = "acme") -> str:
    row = JobExecution(
        id=f"00000000-0000-4000-8000-{abs(hash((status, tenant, count_rows()))) % 10**12:012d}",
        tenant_id=tenant,
        job_class="demo.echo",
        queue="default",
        status=status.value,
        payload={"value": 1},
        max_attempts=1,
    )
    db.session.add(row)
    db.session.commit()
    return row.id


def test_retry_and_cancel_state_conflicts_are_409(client: Any, auth: Any) -> None:
    headers = auth("operator")
    completed = _insert(ExecutionStatus.COMPLETED)
    assert_problem(client.post(f"/api/jobs/{completed}/retry", headers=headers), 409)
    assert_problem(client.post(f"/api/jobs/{completed}/cancel", headers=headers), 409)
    failed = _insert(ExecutionStatus.FAILED)
    assert_problem(client.post(f"/api/jobs/{failed}/cancel", headers=headers), 409)


def test_other_tenants_job_is_404(client: Any, auth: Any) -> None:
    theirs = _insert(ExecutionStatus.FAILED, tenant="globex")
    headers = auth("operator", "acme")
    assert_problem(client.get(f"/api/jobs/{theirs}", headers=headers), 404)
    assert_problem(client.post(f"/api/jobs/{theirs}/retry", headers=headers), 404)
    assert_problem(client.post(f"/api/jobs/{theirs}/cancel", headers=headers), 404)
    assert_problem(client.get("/api/jobs/not-a-job", headers=headers), 404)


def test_retry_of_failed_job_creates_linked_pending_run(client: Any, auth: Any, quiet_queue: str) -> None:
    headers = auth("operator")
    failed_id = _insert(ExecutionStatus.FAILED)
    db.session.get(JobExecution, failed_id).queue = quiet_queue
    db.session.commit()
    response = client.post(f"/api/jobs/{failed_id}/retry", headers=headers)
    assert response.status_code == 202
    new = response.get_json()
    assert new["status"] == "pending" and new["id"] != failed_id
    assert client.get(f"/api/jobs/{new['id']}", headers=headers).get_json()["retry_of"] == failed_id


def test_list_is_newest_first_with_keyset_pagination(client: Any, auth: Any, quiet_queue: str) -> None:
    headers = auth("operator", "pager")
    ids = [
        client.post(
            "/api/jobs/dispatch",
            json={"job_class": "demo.echo", "payload": {"value": i}, "options": {"queue": quiet_queue}},
            headers=headers,
        ).get_json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        url = f"/api/jobs?queue={quiet_queue}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=headers).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    filtered = client.get("/api/jobs?status=completed&job_class=demo.echo", headers=headers).get_json()
    assert filtered["items"] == []


@pytest.mark.parametrize("query", ["status=exploded", "limit=0", "limit=abc", "limit=1000", "cursor=%%%"])
def test_list_rejects_bad_parameters(client: Any, auth: Any, query: str) -> None:
    assert_problem(client.get(f"/api/jobs?{query}", headers=auth("viewer")), 422)


def test_queue_stats_counts_pending_and_unknown_queue_is_404(client: Any, auth: Any, quiet_queue: str) -> None:
    headers = auth("operator", "stats")
    for i in range(3):
        client.post(
            "/api/jobs/dispatch",
            json={"job_class": "demo.echo", "payload": {"value": i}, "options": {"queue": quiet_queue}},
            headers=headers,
        )
    client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "options": {"queue": quiet_queue, "delay": 60}},
        headers=headers,
    )
    stats = client.get(f"/api/jobs/queue/{quiet_queue}/stats", headers=headers).get_json()
    assert stats["queue"] == quiet_queue
    assert stats["pending"] == 3 and stats["delayed"] == 1
    assert stats["processing"] == 0 and stats["completed"] == 0 and stats["failed"] == 0
    assert stats["broker_depth"] == 4
    assert stats["oldest_pending_age_s"] is not None and stats["oldest_pending_age_s"] >= 0
    for key in ("throughput_per_minute", "avg_runtime_ms", "p95_runtime_ms"):
        assert key in stats
    assert_problem(client.get("/api/jobs/queue/never-used-queue/stats", headers=headers), 404)


def test_publish_failure_marks_job_failed_and_answers_503(client: Any, auth: Any) -> None:
    from app.backends.current import replaced

    class BrokenPublisher:
        def publish(self, job: Any) -> None:
            raise ConnectionError("broker down")

    headers = auth("operator", "broken")
    with replaced(publisher=BrokenPublisher()):
        assert_problem(client.post("/api/jobs/dispatch", json={"job_class": "demo.echo"}, headers=headers), 503)
    items = client.get("/api/jobs", headers=headers).get_json()["items"]
    assert len(items) == 1 and items[0]["status"] == "failed"
    assert "could not be queued" in items[0]["error_message"]


def test_openapi_document_lists_the_jobs_endpoints(client: Any, auth: Any) -> None:
    doc = client.get("/api/openapi.json", headers=auth("viewer")).get_json()
    assert doc["openapi"].startswith("3.")
    for path in (
        "/api/jobs/dispatch",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/retry",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/queue/{name}/stats",
        "/api/batches",
        "/api/batches/{batch_id}",
        "/api/batches/{batch_id}/jobs",
        "/api/batches/{batch_id}/cancel",
        "/api/chains",
        "/api/chains/{chain_id}",
    ):
        assert path in doc["paths"]
    # Idempotency-Key and the 503 that says when to try again (R2).
    key = doc["components"]["parameters"]["IdempotencyKey"]
    assert key["name"] == "Idempotency-Key" and key["in"] == "header"
    for path in ("/api/jobs/dispatch", "/api/batches", "/api/chains"):
        post = doc["paths"][path]["post"]
        assert {"$ref": "#/components/parameters/IdempotencyKey"} in post["parameters"]
        assert post["responses"]["503"] == {"$ref": "#/components/responses/Unavailable"}
    assert "Retry-After" in doc["components"]["responses"]["Unavailable"]["headers"]


@pytest.mark.parametrize(
    ("method", "path", "role"),
    [
        ("post", "/api/jobs/{id}/retry", "viewer"),
        ("post", "/api/jobs/{id}/cancel", "viewer"),
        ("get", "/api/jobs/queue/default/stats", None),
        ("get", "/api/jobs/{id}", None),
        ("get", "/api/openapi.json", None),
    ],
)
def test_auth_is_required_on_every_jobs_route(client: Any, auth: Any, method: str, path: str, role: str | None) -> None:
    url = path.format(id=_insert(ExecutionStatus.FAILED))
    assert_problem(getattr(client, method)(url), 401)
    if role is not None:
        assert_problem(getattr(client, method)(url, headers=auth(role)), 403)


def test_chunked_body_over_the_limit_is_413(client: Any, auth: Any) -> None:
    rows_before = count_rows()
    big = b'{"job_class": "demo.echo", "payload": {"value": "' + b"x" * (1024 * 1024) + b'"}}'
    response = client.post(
        "/api/jobs/dispatch",
        input_stream=io.BytesIO(big),
        headers={**auth("operator"), "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413)
    assert count_rows() == rows_before


def test_retry_of_plain_task_keeps_positional_arguments(client: Any, auth: Any, recording_publisher: list[Any]) -> None:
    row = JobExecution(
        id=str(uuid.uuid4()),
        tenant_id="acme",
        job_class="demo.add",
        queue="default",
        status="failed",
        payload={"args": [2, 3], "kwargs": {}},
        max_attempts=1,
    )
    db.session.add(row)
    db.session.commit()
    response = client.post(f"/api/jobs/{row.id}/retry", headers=auth("operator"))
    assert response.status_code == 202
    sent = recording_publisher[-1]
    assert sent.args == [2, 3] and sent.payload == {}
    new = client.get(f"/api/jobs/{response.get_json()['id']}", headers=auth("viewer")).get_json()
    assert new["payload"] == {"args": [2, 3], "kwargs": {}}


def test_queue_stats_do_not_reveal_other_tenants_queues(client: Any, auth: Any, unique: str) -> None:
    queue = f"secret-{unique}"
    client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "options": {"queue": queue}},
        headers=auth("operator", "globex"),
    )
    assert_problem(client.get(f"/api/jobs/queue/{queue}/stats", headers=auth("viewer", "acme")), 404)
    assert client.get(f"/api/jobs/queue/{queue}/stats", headers=auth("viewer", "globex")).status_code == 200
