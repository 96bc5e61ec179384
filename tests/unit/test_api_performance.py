"""GET /api/monitoring/performance: per-class figures from the aggregates, tenant-scoped."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.db import session_scope
from app.kernel.apply import EventApplier
from tests.unit.test_recording_apply import lifecycle


def _finish(tenant: str, job_class: str, runtime: int, failed: bool = False) -> None:
    events = lifecycle(str(uuid.uuid4()), t0=time.time())
    events[0]["c"] = {**events[0]["c"], "tenant": tenant}
    for event in events:
        event["task"] = job_class
    if failed:
        events[2] = {"t": "fail", "id": events[2]["id"], "ts": events[2]["ts"], "eid": "f", "ak": events[1]["ak"],
                     "err": "RuntimeError: x", "exc": "RuntimeError", "rt": runtime}  # fmt: skip
    else:
        events[2]["rt"] = runtime
    with session_scope() as session:
        EventApplier().apply(session, events)


def test_classes_with_success_rate_runtimes_and_advice(client: Any, auth: Any) -> None:
    tenant = f"perf-{uuid.uuid4().hex[:8]}"
    for runtime in (20, 30, 40):
        _finish(tenant, "perf.ok", runtime)
    _finish(tenant, "perf.flaky", 10)
    _finish(tenant, "perf.flaky", 10, failed=True)
    _finish("someone-else", "perf.ok", 99)
    body = client.get("/api/monitoring/performance?hours=1", headers=auth("viewer", tenant)).get_json()
    by_class = {c["job_class"]: c for c in body["classes"]}
    assert set(by_class) == {"perf.ok", "perf.flaky"}
    ok = by_class["perf.ok"]
    assert ok["completed"] == 3 and ok["failed"] == 0 and ok["success_rate"] == 1.0
    assert ok["avg_runtime_ms"] == 30.0 and ok["max_runtime_ms"] == 40
    assert by_class["perf.flaky"]["success_rate"] == 0.5
    assert any("perf.flaky" in advice and "failed" in advice for advice in body["recommendations"])


def test_bad_window_is_422_and_token_is_required(client: Any, auth: Any) -> None:
    for hours in ("0", "-1", "abc", "10000"):
        response = client.get(f"/api/monitoring/performance?hours={hours}", headers=auth("viewer"))
        assert response.status_code == 422
    assert client.get("/api/monitoring/performance").status_code == 401


def test_tight_timeouts_and_starving_queues_are_called_out(client: Any, auth: Any) -> None:
    from app.db import db
    from app.models import JobDefinition

    tenant = f"perf-{uuid.uuid4().hex[:8]}"
    job_class = f"perf.tight.{uuid.uuid4().hex[:6]}"
    db.session.add(JobDefinition(name=job_class, job_class=job_class, default_queue="default", timeout=2))
    db.session.commit()
    for runtime in (1900, 1950, 1990):
        _finish(tenant, job_class, runtime)
    headers = auth("operator", tenant)
    starving = f"starving-{uuid.uuid4().hex[:6]}"
    response = client.post(
        "/api/jobs/dispatch", json={"job_class": "demo.echo", "options": {"queue": starving}}, headers=headers
    )
    assert response.status_code == 201
    body = client.get("/api/monitoring/performance", headers=headers).get_json()
    assert any(job_class in advice and "timeout" in advice for advice in body["recommendations"])
    queue = next(q for q in body["queues"] if q["queue"] == starving)
    assert queue["starving"] is True and queue["pending"] == 1
    assert any(f"queue {starving}" in advice and "starving" in advice for advice in body["recommendations"])


def test_a_class_that_retries_often_is_called_out(client: Any, auth: Any) -> None:
    from celeriac import events as ev

    tenant = f"perf-{uuid.uuid4().hex[:8]}"
    job_class = f"perf.retries.{uuid.uuid4().hex[:6]}"
    for n in range(10):
        events = lifecycle(str(uuid.uuid4()), t0=time.time() - 10)
        events[0]["c"] = {**events[0]["c"], "tenant": tenant}
        for event in events:
            event["task"] = job_class
        if n < 5:  # the first attempt of half of them ended in a retry
            retry = ev.retried(events[0]["id"], events[1]["ak"], 5, None, ConnectionError("busy"), None, None)
            retry["ts"] = events[1]["ts"] + 0.5
            events.append(retry)
        with session_scope() as session:
            EventApplier().apply(session, events[:2] + events[3:])  # the retry, not the success
            if n >= 5:
                EventApplier().apply(session, events[2:3])
    body = client.get("/api/monitoring/performance", headers=auth("viewer", tenant)).get_json()
    item = next(c for c in body["classes"] if c["job_class"] == job_class)
    assert item["retried"] == 5 and item["completed"] == 5 and item["retry_rate"] == 0.5
    assert item["avg_wait_ms"] == 1000.0
    assert any(job_class in advice and "retry" in advice for advice in body["recommendations"])
