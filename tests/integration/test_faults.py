"""Cancel, malformed messages and an SQL outage, against a real worker and Redis (F5, E2)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult
from kombu import Connection, Exchange, Producer

from app.db import db
from app.models import JobExecution
from app.monitoring.queue_stats import broker_depth
from tests.conftest import REDIS_URL, wait_for
from tests.integration.conftest import WorkerProcess, wait_dealt_with
from tests.integration.test_execution import row, wait_status

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_cancel_of_queued_job_survives_a_worker_restart(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    queue = f"held-{unique}"
    headers = auth("operator")
    body = {"job_class": "tests.marker", "payload": {"key": unique}, "options": {"queue": queue}}
    job_id = client.post("/api/jobs/dispatch", json=body, headers=headers).get_json()["id"]
    assert broker_depth(redis_client, queue) == 1
    response = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    # No worker consumed the queue when the revoke was broadcast; one starts only now.
    late = WorkerProcess(tmp_path / "late.log", queues=queue, concurrency=1, hostname=f"late-{unique}@%h")
    try:
        wait_dealt_with(redis_client, queue, job_id)
    finally:
        late.stop()
    assert redis_client.get(f"tests:marker:{unique}:runs") is None
    assert row(job_id).status == "cancelled"  # type: ignore[union-attr]


def test_cancel_of_running_job_terminates_it(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any
) -> None:
    headers = auth("operator")
    body = {"job_class": "tests.marker", "payload": {"key": unique, "seconds": 30}}
    job_id = client.post("/api/jobs/dispatch", json=body, headers=headers).get_json()["id"]
    wait_status(job_id, "processing")
    pid = int(redis_client.get(f"tests:marker:{unique}:pid"))
    response = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
    assert response.status_code == 200
    import psutil

    wait_for(
        lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
        what="the job's process to be terminated",
    )
    assert client.get(f"/api/jobs/{job_id}", headers=headers).get_json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=headers).status_code == 409
    retried = client.post(f"/api/jobs/{job_id}/retry", headers=headers)
    assert retried.status_code == 202
    new_id = retried.get_json()["id"]
    assert new_id != job_id
    done = wait_status(new_id, "completed")
    assert done.retry_of == job_id


def _publish_raw(body: Any, *, content_type: str, headers: dict[str, Any], queue: str = "default") -> None:
    with Connection(REDIS_URL) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(""))
        producer.publish(
            body,
            routing_key=queue,
            content_type=content_type,
            content_encoding="utf-8",
            headers=headers,
            serializer=None,
        )


@pytest.mark.parametrize(
    ("body", "content_type", "task", "reason"),
    [
        (b"{this is not json", "application/json", "demo.echo", "could not be decoded"),
        (b"\x80\x04K\x01.", "application/x-python-serialize", "demo.echo", "Refusing to deserialize"),
        (b"[[], {}, {}]", "application/json", "no.such.task", "unknown task"),
    ],
    ids=["bad-json", "pickle-refused", "unknown-task"],
)
def test_malformed_messages_are_recorded_and_worker_keeps_running(
    stack: Any, body: bytes, content_type: str, task: str, reason: str
) -> None:
    job_id = str(uuid.uuid4())
    _publish_raw(body, content_type=content_type, headers={"id": job_id, "task": task, "lang": "py"})
    rejected = wait_status(job_id, "failed")
    assert reason in (rejected.error_message or "")
    from tasks.demo import Echo

    assert wait_status(Echo.dispatch(value="still up"), "completed").result == "still up"


def test_message_without_task_header_is_recorded(stack: Any) -> None:
    marker = uuid.uuid4().hex
    _publish_raw(f'{{"marker": "{marker}"}}'.encode(), content_type="application/json", headers={})

    def find() -> Any:
        from sqlalchemy import select

        from app.db import session_scope

        with session_scope() as session:
            rows = session.scalars(select(JobExecution).where(JobExecution.exception_type == "Rejected"))
            return [r for r in rows if marker in str(r.payload)]

    found = wait_for(find, what="rejected message row")
    assert found[0].status == "failed"
    assert "rejected" in (found[0].error_message or "")


def test_recorder_catches_up_after_sql_outage(stack: Any, redis_client: Any) -> None:
    from tasks.demo import Echo

    recorder = stack["recorder"].recorder
    healthy = recorder.settings
    failures_before = recorder.stats.failures
    recorder.settings = dataclasses.replace(healthy, database_url="postgresql+psycopg://127.0.0.1:1/down")
    try:
        ids = [Echo.dispatch(value=i) for i in range(20)]
        wait_for(lambda: all(AsyncResult(i).state == "SUCCESS" for i in ids), what="jobs to run")
        wait_for(lambda: recorder.stats.failures > failures_before, what="recorder to hit the outage")
        # Dispatch wrote the pending rows; the recorder could not move them on.
        statuses = [getattr(row(i), "status", None) for i in ids]
        assert statuses == ["pending"] * len(ids), "nothing recorded while SQL is down"
    finally:
        recorder.settings = healthy
    for i, job_id in enumerate(ids):
        assert wait_status(job_id, "completed", timeout=60).result == i
    recorder.publish_stats()
    stats = {k.decode(): v.decode() for k, v in redis_client.hgetall("celeriac:recorder:stats").items()}
    assert float(stats["lag_p99_ms"]) > 0
    assert int(stats["failures_total"]) > failures_before
    assert redis_client.get("celeriac:recorder:heartbeat") is not None


def test_tenant_sees_only_its_own_jobs(stack: Any, client: Any, auth: Any) -> None:
    mine, theirs = auth("operator", "acme"), auth("operator", "globex")
    body = {"job_class": "demo.echo", "payload": {"value": "secret"}}
    their_id = client.post("/api/jobs/dispatch", json=body, headers=theirs).get_json()["id"]
    my_id = client.post("/api/jobs/dispatch", json=body, headers=mine).get_json()["id"]
    assert client.get(f"/api/jobs/{their_id}", headers=mine).status_code == 404
    assert client.post(f"/api/jobs/{their_id}/cancel", headers=mine).status_code == 404
    assert client.post(f"/api/jobs/{their_id}/retry", headers=mine).status_code == 404
    listed = client.get("/api/jobs?limit=200", headers=mine).get_json()["items"]
    assert my_id in [j["id"] for j in listed]
    assert {j["tenant_id"] for j in listed} == {"acme"}
    db.session.remove()
