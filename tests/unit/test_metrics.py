"""GET /metrics (Prometheus text, checked by prometheus_client's parser) and the JSON twins."""

from __future__ import annotations

import time
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from app.db import session_scope
from app.kernel.apply import EventApplier
from tests.unit.test_recording_apply import lifecycle


def _complete(tenant: str, queue: str, runtime: int) -> None:
    events = lifecycle(str(uuid.uuid4()), t0=time.time())
    events[0]["c"] = {**events[0]["c"], "tenant": tenant}
    events[0]["q"] = queue
    events[2]["rt"] = runtime
    with session_scope() as session:
        EventApplier().apply(session, events)


def _samples(text: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        found.setdefault(family.name, []).extend(family.samples)
    return found


def test_metrics_parse_and_count_this_tenants_jobs(client: Any, auth: Any) -> None:
    tenant, queue = f"m-{uuid.uuid4().hex[:8]}", f"mq-{uuid.uuid4().hex[:8]}"
    for runtime in (20, 700):
        _complete(tenant, queue, runtime)
    _complete("another-tenant", queue, 5)
    response = client.get("/metrics", headers=auth("viewer", tenant))
    assert response.status_code == 200 and response.content_type.startswith("text/plain")
    samples = _samples(response.get_data(as_text=True))
    finished = [s for s in samples["celeriac_jobs_finished"] if s.labels.get("queue") == queue]
    assert {(s.labels["status"], s.value) for s in finished if s.name.endswith("_total")} >= {("completed", 2.0)}
    counts = [s for s in samples["celeriac_job_runtime_seconds"] if s.name.endswith("_count")]
    assert sum(s.value for s in counts) == 2.0, "only this tenant's runs"
    buckets = {s.labels["le"]: s.value for s in samples["celeriac_job_runtime_seconds"] if s.name.endswith("_bucket")}
    assert buckets["0.025"] == 1.0 and buckets["+Inf"] == 2.0
    assert any(s.labels.get("queue") == "default" for s in samples["celeriac_queue_depth"])
    assert "celeriac_workers_online" in samples


def test_metrics_need_a_token(client: Any) -> None:
    assert client.get("/metrics").status_code == 401


def test_admin_queue_stats_and_metrics_json(client: Any, auth: Any) -> None:
    tenant, queue = f"m-{uuid.uuid4().hex[:8]}", f"mq-{uuid.uuid4().hex[:8]}"
    _complete(tenant, queue, 30)
    headers = auth("viewer", tenant)
    stats = client.get("/api/admin/queue/stats", headers=headers).get_json()["queues"]
    mine = [q for q in stats if q["queue"] == queue]
    assert len(mine) == 1 and mine[0]["completed"] == 1
    assert all(q["queue"] != "never-used" for q in stats)
    body = client.get("/api/admin/queue/metrics", headers=headers).get_json()
    assert {"counters", "gauges"} <= set(body)
    assert any(c["queue"] == queue and c["status"] == "completed" for c in body["counters"]["jobs_finished"])


def test_metrics_carry_the_wait_histogram_and_retries(client: Any, auth: Any) -> None:
    from celeriac import events as ev

    tenant, queue = f"m-{uuid.uuid4().hex[:8]}", f"mq-{uuid.uuid4().hex[:8]}"
    _complete(tenant, queue, 10)  # waited 1 s between publish and start
    events = lifecycle(str(uuid.uuid4()), t0=time.time())
    events[0]["c"] = {**events[0]["c"], "tenant": tenant}
    events[0]["q"] = queue
    retry = ev.retried(events[0]["id"], events[1]["ak"], 5, None, ConnectionError("busy"), None, None)
    retry["ts"] = events[1]["ts"] + 0.5
    with session_scope() as session:
        EventApplier().apply(session, events[:2] + [retry])
    headers = auth("viewer", tenant)
    samples = _samples(client.get("/metrics", headers=headers).get_data(as_text=True))
    waits = {s.labels["le"]: s.value for s in samples["celeriac_job_wait_seconds"] if s.name.endswith("_bucket")}
    assert waits["0.5"] == 0.0 and waits["1"] == 1.0 and waits["+Inf"] == 1.0
    retried = [s for s in samples["celeriac_jobs_retried"] if s.name.endswith("_total")]
    assert [(s.labels["queue"], s.value) for s in retried] == [(queue, 1.0)]
    body = client.get("/api/admin/queue/metrics", headers=headers).get_json()
    expected = {"tenant": tenant, "queue": queue, "job_class": "demo.echo", "value": 1}
    assert body["counters"]["jobs_retried"] == [expected]


def test_metrics_count_what_the_reconciler_and_workers_recovered(client: Any, auth: Any, redis_client: Any) -> None:
    from app.recording.recoveries import count_recoveries

    def recovered() -> dict[str, float]:
        samples = _samples(client.get("/metrics", headers=auth("viewer")).get_data(as_text=True))
        return {s.labels["kind"]: s.value for s in samples["celeriac_recoveries"] if s.name.endswith("_total")}

    before = recovered()
    count_recoveries(redis_client, {"republished": 2, "worker_losses_requeued": 1})
    after = recovered()
    assert after["republished"] == before.get("republished", 0) + 2
    assert after["worker_losses_requeued"] == before.get("worker_losses_requeued", 0) + 1
    assert after["orphans_failed"] == before.get("orphans_failed", 0)  # every kind is listed, zero or not
