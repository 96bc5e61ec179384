"""Queue health (M4): each rule, its level and a concrete recommendation; the endpoint."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from app.config import ConfigError, HealthThresholds, load_settings
from app.kernel.aggregates import BUCKETS, MinuteStats, WindowStats
from app.monitoring.health import CRITICAL, HEALTHY, WARNING, assess
from app.monitoring.workers import ONLINE, Heartbeat, WorkerInfo


def worker(queues: list[str], status: str = ONLINE) -> WorkerInfo:
    now = time.time()
    beat = Heartbeat("w1@host", 1, 2, 0, 10, queues, [0.1, 0.1, 0.1], 50.0, now - 60, now)
    return WorkerInfo(beat, status)


def queue(name: str, pending: int = 0, failed: int = 0, oldest: float | None = None) -> dict[str, Any]:
    return {"queue": name, "pending": pending, "failed": failed, "oldest_pending_age_s": oldest}


ALIVE = {b"backlog": b"0"}


def test_all_quiet_is_healthy() -> None:
    report = assess([queue("default")], [worker(["default"])], ALIVE, True, 0, HealthThresholds())
    assert report.as_dict() == {"status": HEALTHY, "issues": [], "recommendations": []}


def test_backlog_with_few_workers_is_a_warning_with_advice() -> None:
    emails = [queue("emails", pending=4200, oldest=540)]
    report = assess(emails, [worker(["emails"])], ALIVE, True, 0, HealthThresholds())
    assert report.status == WARNING
    assert report.recommendations == [
        "queue emails: 4,200 pending, oldest 9 min, 1 worker consuming - add workers or raise concurrency"
    ]


def test_no_worker_or_no_recorder_or_unconsumed_queue_is_critical() -> None:
    assert assess([], [], ALIVE, True, 0, HealthThresholds()).status == CRITICAL
    assert assess([], [worker(["default"])], ALIVE, False, 0, HealthThresholds()).status == CRITICAL
    orphan = assess([queue("reports", pending=3)], [worker(["default"])], ALIVE, True, 0, HealthThresholds())
    assert orphan.status == CRITICAL and "-Q reports" in orphan.recommendations[0]


def test_waits_failures_backlog_and_stuck_jobs_are_warnings_with_configurable_thresholds() -> None:
    limits = load_settings(
        {"CELERIAC_HEALTH_FAILED_WARNING": "5", "CELERIAC_HEALTH_OLDEST_PENDING_WARNING_S": "2"}
    ).health
    assert limits.failed_warning == 5 and limits.oldest_pending_warning_s == 2
    online = [worker(["default"])]
    assert assess([queue("default", pending=1, oldest=1.0)], online, ALIVE, True, 0, limits).status == HEALTHY
    stalled = assess([queue("default", pending=1, oldest=3.0)], online, ALIVE, True, 0, limits)
    assert stalled.status == WARNING and "has not started" in stalled.issues[0]["issue"]
    assert assess([queue("default", failed=6)], online, ALIVE, True, 0, limits).status == WARNING
    assert assess([], online, {b"backlog": b"20000"}, True, 0, limits).status == WARNING
    stuck = assess([], online, ALIVE, True, 2, limits)
    assert stuck.status == WARNING and "flask celeriac reconcile" in stuck.recommendations[0]


def recent(waits_ms: list[int], completed: int = 0, retried: int = 0) -> WindowStats:
    """A queue's recent aggregates, built the way the recorder builds them."""
    minute = MinuteStats()
    for waited in waits_ms:
        minute.add("completed", 10, None, waited)
    minute.values["completed"] += completed
    minute.values["retried"] += retried
    v = minute.values
    return WindowStats(
        v["completed"], v["failed"], v["cancelled"], v["runtime_count"], v["runtime_sum_ms"], v["runtime_max_ms"],
        v["memory_count"], v["memory_sum_mb"], tuple(v[f"b{n}"] for n in range(BUCKETS)), v["retried"],
        v["wait_count"], v["wait_sum_ms"], v["wait_max_ms"], tuple(v[f"w{n}"] for n in range(BUCKETS)),
    )  # fmt: skip


def test_p95_wait_over_the_threshold_is_a_warning_with_concrete_advice() -> None:
    online = [worker(["emails"])]
    limits = HealthThresholds()
    assert limits.wait_warning_ms == 500 and limits.recent_window_s == 600
    quick = {"emails": recent([40] * 19 + [900])}  # one slow start in twenty: p95 under 500 ms
    assert assess([queue("emails", pending=3)], online, ALIVE, True, 0, limits, quick).status == HEALTHY
    slow = {"emails": recent([40] * 10 + [2400] * 10)}
    report = assess([queue("emails", pending=3)], online, ALIVE, True, 0, limits, slow)
    assert report.status == WARNING
    assert (
        report.issues[0]["subject"] == "queue emails"
        and "p95 wait 2.3 s over the last 10 min" in (report.issues[0]["issue"])
    )
    assert report.recommendations == [
        "queue emails: p95 wait 2.3 s (over 500 ms) with 1 worker consuming - add workers or raise their "
        "concurrency (`celery worker -c`), or move long jobs to their own queue"
    ]
    few = {"emails": recent([2400] * 3)}  # below CELERIAC_HEALTH_MIN_SAMPLES: too few to judge
    assert assess([queue("emails")], online, ALIVE, True, 0, limits, few).status == HEALTHY
    lenient = load_settings({"CELERIAC_HEALTH_WAIT_WARNING_MS": "5000"}).health
    assert assess([queue("emails")], online, ALIVE, True, 0, lenient, slow).status == HEALTHY


def test_high_retry_rate_is_a_warning_with_a_configurable_threshold() -> None:
    online = [worker(["emails"])]
    flaky = {"emails": recent([], completed=60, retried=40)}
    report = assess([queue("emails")], online, ALIVE, True, 0, HealthThresholds(), flaky)
    assert report.status == WARNING
    assert "40 % of the attempts" in report.issues[0]["issue"] and "(40 of 100)" in report.issues[0]["issue"]
    assert "GET /api/monitoring/performance" in report.recommendations[0]
    tolerant = load_settings({"CELERIAC_HEALTH_RETRY_RATE_WARNING": "0.5"}).health
    assert tolerant.retry_rate_warning == 0.5
    assert assess([queue("emails")], online, ALIVE, True, 0, tolerant, flaky).status == HEALTHY


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("CELERIAC_HEALTH_PENDING_WARNING", "lots", "must be an integer"),
        ("CELERIAC_HEALTH_RETRY_RATE_WARNING", "20%", "must be a number"),
        ("CELERIAC_HEALTH_RETRY_RATE_WARNING", "1.5", "must be from 0.0 to 1.0"),
        ("CELERIAC_HEALTH_RECENT_WINDOW_S", "30", "must be at least 60"),
        ("CELERIAC_HEALTH_MIN_SAMPLES", "0", "must be at least 1"),
    ],
)
def test_a_bad_threshold_stops_settings_loading_and_names_the_variable(name: str, value: str, problem: str) -> None:
    """Checked once at start-up, not on each health poll (where it used to be a 500)."""
    with pytest.raises(ConfigError, match=f"^{name} {problem}"):
        load_settings({name: value})


def test_health_endpoint_reports_for_the_tokens_tenant(client: Any, auth: Any) -> None:
    body = client.get("/api/admin/queue/health", headers=auth("viewer", f"h-{uuid.uuid4().hex[:6]}")).get_json()
    assert body["status"] in (HEALTHY, WARNING, CRITICAL)
    assert isinstance(body["issues"], list) and isinstance(body["recommendations"], list)
    assert client.get("/api/admin/queue/health").status_code == 401


def test_health_endpoint_warns_of_slow_starts_from_the_recorded_waits(client: Any, auth: Any) -> None:
    from app.db import session_scope
    from app.kernel.apply import EventApplier
    from tests.unit.test_recording_apply import lifecycle

    tenant = f"h-{uuid.uuid4().hex[:6]}"
    name = f"waits-{uuid.uuid4().hex[:6]}"
    for _ in range(12):  # each waited 1 s between publish and start
        events = lifecycle(str(uuid.uuid4()), t0=time.time() - 5)
        events[0]["c"] = {**events[0]["c"], "tenant": tenant}
        events[0]["q"] = events[1]["q"] = name
        with session_scope() as session:
            EventApplier().apply(session, events)
    body = client.get("/api/admin/queue/health", headers=auth("viewer", tenant)).get_json()
    waits = [i for i in body["issues"] if i["subject"] == f"queue {name}"]
    assert len(waits) == 1 and waits[0]["level"] == WARNING and "p95 wait" in waits[0]["issue"]
    assert any(r.startswith(f"queue {name}: p95 wait") and "add workers" in r for r in body["recommendations"])
    stats = client.get(f"/api/jobs/queue/{name}/stats", headers=auth("viewer", tenant)).get_json()
    assert stats["avg_wait_ms"] == 1000.0 and stats["p95_wait_ms"] is not None and stats["p95_wait_ms"] <= 1000
    other = client.get("/api/admin/queue/health", headers=auth("viewer", f"x-{tenant}")).get_json()
    assert not any(name in i["subject"] for i in other["issues"]), "another tenant's waits are not shown"
