"""Queue health (M4): each rule, its level and a concrete recommendation; the endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.monitoring.health import CRITICAL, HEALTHY, WARNING, Thresholds, assess
from app.monitoring.workers import ONLINE, Heartbeat, WorkerInfo


def worker(queues: list[str], status: str = ONLINE) -> WorkerInfo:
    now = time.time()
    beat = Heartbeat("w1@host", 1, 2, 0, 10, queues, [0.1, 0.1, 0.1], 50.0, now - 60, now)
    return WorkerInfo(beat, status)


def queue(name: str, pending: int = 0, failed: int = 0, oldest: float | None = None) -> dict[str, Any]:
    return {"queue": name, "pending": pending, "failed": failed, "oldest_pending_age_s": oldest}


ALIVE = {b"backlog": b"0"}


def test_all_quiet_is_healthy() -> None:
    report = assess([queue("default")], [worker(["default"])], ALIVE, True, 0, Thresholds())
    assert report.as_dict() == {"status": HEALTHY, "issues": [], "recommendations": []}


def test_backlog_with_few_workers_is_a_warning_with_advice() -> None:
    report = assess([queue("emails", pending=4200, oldest=540)], [worker(["emails"])], ALIVE, True, 0, Thresholds())
    assert report.status == WARNING
    assert report.recommendations == [
        "queue emails: 4,200 pending, oldest 9 min, 1 worker consuming - add workers or raise concurrency"
    ]


def test_no_worker_or_no_recorder_or_unconsumed_queue_is_critical() -> None:
    assert assess([], [], ALIVE, True, 0, Thresholds()).status == CRITICAL
    assert assess([], [worker(["default"])], ALIVE, False, 0, Thresholds()).status == CRITICAL
    orphan = assess([queue("reports", pending=3)], [worker(["default"])], ALIVE, True, 0, Thresholds())
    assert orphan.status == CRITICAL and "-Q reports" in orphan.recommendations[0]


def test_waits_failures_backlog_and_stuck_jobs_are_warnings_with_configurable_thresholds() -> None:
    limits = Thresholds.from_environ({"CELERIAC_HEALTH_FAILED_WARNING": "5", "CELERIAC_HEALTH_WAIT_WARNING_MS": "2000"})
    assert limits.failed_warning == 5 and limits.wait_warning_ms == 2000
    online = [worker(["default"])]
    assert assess([queue("default", pending=1, oldest=1.0)], online, ALIVE, True, 0, limits).status == HEALTHY
    assert assess([queue("default", pending=1, oldest=3.0)], online, ALIVE, True, 0, limits).status == WARNING
    assert assess([queue("default", failed=6)], online, ALIVE, True, 0, limits).status == WARNING
    assert assess([], online, {b"backlog": b"20000"}, True, 0, limits).status == WARNING
    stuck = assess([], online, ALIVE, True, 2, limits)
    assert stuck.status == WARNING and "reap-stuck" in stuck.recommendations[0]


def test_health_endpoint_reports_for_the_tokens_tenant(client: Any, auth: Any) -> None:
    body = client.get("/api/admin/queue/health", headers=auth("viewer", f"h-{uuid.uuid4().hex[:6]}")).get_json()
    assert body["status"] in (HEALTHY, WARNING, CRITICAL)
    assert isinstance(body["issues"], list) and isinstance(body["recommendations"], list)
    assert client.get("/api/admin/queue/health").status_code == 401
