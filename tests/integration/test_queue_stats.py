"""Queue stats with a real worker (M1): aggregates, and depth over every priority sub-list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.monitoring.queue_stats import broker_depth, broker_queue_keys
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_completed_failed_and_runtimes_come_from_the_aggregates(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    headers = auth("operator", tenant=f"stats-{unique}")
    ids = []
    for body in (
        {"job_class": "demo.sleep", "payload": {"seconds": 0.06}},
        {"job_class": "demo.sleep", "payload": {"seconds": 0.06}},
        {"job_class": "demo.fail", "payload": {"message": "x"}},
    ):
        ids.append(client.post("/api/jobs/dispatch", json=body, headers=headers).get_json()["id"])

    def finished() -> bool:
        return all(
            client.get(f"/api/jobs/{i}", headers=headers).get_json()["status"] in ("completed", "failed") for i in ids
        )

    wait_for(finished, timeout=40, what="jobs to finish")
    stats = client.get("/api/jobs/queue/default/stats", headers=headers).get_json()
    assert stats["completed"] == 2 and stats["failed"] == 1, "this tenant's hour only"
    assert stats["avg_runtime_ms"] is not None and stats["avg_runtime_ms"] >= 60
    assert stats["p95_runtime_ms"] is not None and stats["p95_runtime_ms"] >= 50
    assert stats["throughput_per_minute"] == round(2 / 60, 3)


def _metric(text: str, name: str, **labels: str) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def test_pending_and_depth_count_every_priority_sub_list_until_a_worker_drains_them(
    stack: Any, client: Any, auth: Any, redis_client: Any, unique: str, tmp_path: Path
) -> None:
    """Jobs of priorities 0-9 land in ten Redis lists; every figure counts all of them."""
    queue = f"prio-{unique}"  # no worker consumes it yet
    headers = auth("operator", f"prio-{unique}")
    ids = [
        client.post(
            "/api/jobs/dispatch",
            json={"job_class": "demo.echo", "payload": {"value": p}, "options": {"queue": queue, "priority": p}},
            headers=headers,
        ).get_json()["id"]
        for p in (0, 1, 5, 5, 7, 9, 9, 9)
    ]
    lists = {key: int(redis_client.llen(key)) for key in broker_queue_keys(queue)}
    assert sum(1 for n in lists.values() if n) >= 4, f"the jobs are spread over sub-lists: {lists}"
    assert redis_client.llen(queue) < len(ids), "the bare list alone (what Flower counts) misses jobs"

    stats = client.get(f"/api/jobs/queue/{queue}/stats", headers=headers).get_json()
    assert (stats["pending"], stats["broker_depth"]) == (8, 8)
    listed = client.get("/api/admin/queue/stats", headers=headers).get_json()["queues"]
    assert next(q for q in listed if q["queue"] == queue)["broker_depth"] == 8
    metrics = client.get("/metrics", headers=headers).get_data(as_text=True)
    assert _metric(metrics, "celeriac_queue_depth", queue=queue) == 8
    assert _metric(metrics, "celeriac_jobs_live", queue=queue, status="pending") == 8
    health = client.get("/api/admin/queue/health", headers=headers).get_json()
    assert any(i["subject"] == f"queue {queue}" and "8 pending" in i["issue"] for i in health["issues"])

    drainer = WorkerProcess(tmp_path / "drainer.log", queues=queue, concurrency=1, hostname=f"drain-{unique}@%h")
    try:

        def drained() -> bool:
            now = client.get(f"/api/jobs/queue/{queue}/stats", headers=headers).get_json()
            return bool(now["completed"] == 8 and now["pending"] == 0 and now["broker_depth"] == 0)

        wait_for(drained, timeout=60, what="the worker to drain every priority sub-list")
    finally:
        drainer.stop()
    stats = client.get(f"/api/jobs/queue/{queue}/stats", headers=headers).get_json()
    assert stats["processing"] == 0 and stats["avg_wait_ms"] is not None and stats["p95_wait_ms"] is not None
    assert all(int(redis_client.llen(key)) == 0 for key in broker_queue_keys(queue))


@pytest.mark.parametrize(
    "options",
    [
        {"global_keyprefix": "tenant-a:", "priority_steps": list(range(10)), "sep": ":"},
        {"global_keyprefix": "pfx/"},  # kombu's own separator and priority steps
        {},
    ],
    ids=["prefix-and-ten-steps", "prefix-and-kombu-defaults", "kombu-defaults"],
)
def test_depth_follows_the_transports_prefix_separator_and_steps(
    redis_client: Any, unique: str, options: dict[str, Any]
) -> None:
    """Messages published by kombu itself, with the transport options a deployment may set."""
    from kombu import Connection, Exchange, Producer, Queue

    from tests.conftest import REDIS_URL

    name = f"kp-{unique}"
    with Connection(REDIS_URL, transport_options=options) as conn:
        channel = conn.channel()
        queue = Queue(name, Exchange(name, type="direct"), routing_key=name, max_priority=9)
        queue(channel).declare()
        producer = Producer(channel, exchange=queue.exchange, routing_key=name)
        for priority in (0, 2, 4, 6, 8, 9, 9):
            producer.publish({"p": priority}, priority=priority, declare=[queue])
        kombu_count = channel._size(name)
        keys = broker_queue_keys(name, options)
        try:
            assert kombu_count == 7
            assert broker_depth(redis_client, name, options) == 7
            if options.get("global_keyprefix"):
                assert broker_depth(redis_client, name, {}) == 0, "without the prefix nothing is found"
        finally:
            redis_client.delete(*keys)
