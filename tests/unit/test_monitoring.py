"""Worker registry reads, stuck and slow detection, the reaper and their API (M2, M3)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from app.config import MonitoringConfig
from app.db import db
from app.kernel.aggregates import Aggregator
from app.models import AuditLog, JobDefinition, JobExecution
from app.monitoring.workers import Heartbeat, list_workers, write_heartbeat

FAST = MonitoringConfig(offline_after_s=2, forget_after_s=60, p95_min_samples=5, reap_after_s=5)


def beat(hostname: str, age_s: float, stopped: bool = False) -> Heartbeat:
    at = time.time() - age_s
    return Heartbeat(hostname, 1, 4, 1, 10, ["default"], [0.1, 0.1, 0.1], 50.0, at - 100, at, at if stopped else None)


def add_job(
    job_class: str, status: str, tenant: str = "acme", worker: str | None = None, age_s: float = 0, runtime_ms: int = 0
) -> str:
    at = datetime.fromtimestamp(time.time() - age_s, UTC)
    row = JobExecution(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        job_class=job_class,
        queue="mon",
        status=status,
        worker_id=worker,
        started_at=at,
        created_at=at,
        updated_at=at,
        execution_time_ms=runtime_ms or None,
        payload={"seconds": 1},
    )
    db.session.add(row)
    if status in ("completed", "failed"):  # counted in the per-minute aggregates, as the recorder does
        stats = Aggregator()
        stats.add(at, tenant, "mon", job_class, status, runtime_ms or None, None)
        stats.flush(db.session.connection())
    db.session.commit()
    return row.id


def add_definition(job_class: str, timeout_s: int) -> None:
    db.session.add(JobDefinition(name=job_class, job_class=job_class, timeout=timeout_s))
    db.session.commit()


@pytest.fixture()
def fast_app(app: Any) -> Any:
    settings = app.extensions["celeriac_settings"]
    app.extensions["celeriac_settings"] = dataclasses.replace(settings, monitoring=FAST)
    return app


def test_list_workers_status_by_heartbeat_age(redis_client: Any, unique: str) -> None:
    for name, age, stopped in (("live", 0.5, False), ("late", 5, False), ("stopped", 0.1, True)):
        write_heartbeat(redis_client, beat(f"{name}-{unique}", age, stopped), FAST)
    found = {w.heartbeat.hostname: w.status for w in list_workers(redis_client, FAST)}
    assert found[f"live-{unique}"] == "online"
    assert found[f"late-{unique}"] == "offline"
    assert found[f"stopped-{unique}"] == "offline"


def test_workers_api_contract_and_auth(client: Any, auth: Any, fast_app: Any, redis_client: Any, unique: str) -> None:
    write_heartbeat(redis_client, beat(f"api-{unique}", 0.1), FAST)
    assert client.get("/api/admin/queue/workers").status_code == 401
    # Workers are shared: any tenant's viewer sees them.
    answer = client.get("/api/admin/queue/workers", headers=auth("viewer", f"t-{unique}"))
    assert answer.status_code == 200
    worker = next(w for w in answer.get_json()["workers"] if w["hostname"] == f"api-{unique}")
    assert {"hostname", "status", "last_heartbeat", "pool_size", "active", "processed", "queues"} <= set(worker)
    assert (worker["status"], worker["pool_size"], worker["queues"]) == ("online", 4, ["default"])


def test_stuck_past_timeout_or_offline_worker_tenant_scoped(
    client: Any, auth: Any, fast_app: Any, redis_client: Any, unique: str
) -> None:
    job_class = f"mon.stuck.{unique}"
    add_definition(job_class, timeout_s=30)
    write_heartbeat(redis_client, beat(f"dead-{unique}", 10), FAST)
    write_heartbeat(redis_client, beat(f"alive-{unique}", 0.1), FAST)
    overdue = add_job(job_class, "processing", worker=f"alive-{unique}", age_s=200)  # 30 s + 60 s grace
    orphan = add_job(job_class, "processing", worker=f"dead-{unique}", age_s=1)
    fine = add_job(job_class, "processing", worker=f"alive-{unique}", age_s=1)
    other = add_job(job_class, "processing", tenant=f"other-{unique}", worker=f"dead-{unique}", age_s=1)

    answer = client.get("/api/monitoring/stuck?limit=200", headers=auth("viewer", "acme"))
    assert answer.status_code == 200
    items = {i["id"]: i for i in answer.get_json()["items"]}
    assert items[overdue]["reasons"] == ["past_timeout"]
    assert items[orphan]["reasons"] == ["worker_offline"]
    assert fine not in items and other not in items
    assert client.get("/api/monitoring/stuck").status_code == 401
    assert client.get("/api/monitoring/stuck?limit=0", headers=auth("viewer")).status_code == 422


def test_slow_past_class_p95_or_near_timeout(client: Any, auth: Any, fast_app: Any, unique: str) -> None:
    job_class = f"mon.slow.{unique}"
    add_definition(job_class, timeout_s=100)
    for _ in range(40):
        add_job(job_class, "completed", runtime_ms=100, age_s=60)
    finished_slow = add_job(job_class, "completed", runtime_ms=1000)  # > 3 x p95 (100 ms)
    running_slow = add_job(job_class, "processing", age_s=85)  # > 0.8 x 100 s timeout
    other = add_job(job_class, "completed", tenant=f"other-{unique}", runtime_ms=1000)

    answer = client.get("/api/monitoring/slow", headers=auth("viewer", "acme"))
    assert answer.status_code == 200
    items = {i["id"]: i for i in answer.get_json()["items"]}
    assert items[finished_slow]["reasons"] == ["past_p95"]
    # The aggregates' p95 (the one /api/monitoring/performance shows), within its 50-100 ms bucket.
    assert 90 <= items[finished_slow]["class_p95_ms"] <= 100
    assert items[running_slow]["reasons"] == ["past_p95", "near_timeout"]
    assert other not in items
    assert len([i for i in items.values() if i["job_class"] == job_class]) == 2


def test_reconcile_cli_runs_one_pass_audited_and_the_old_name_still_works(app: Any) -> None:
    from celeryconfig import beat_schedule
    from tasks.maintenance import reap_stuck_task

    for command in ("reconcile", "reap-stuck"):
        result = app.test_cli_runner().invoke(args=["celeriac", command])
        assert result.exit_code == 0, result.output
        assert "republished:" in result.output and "orphans_requeued:" in result.output
    audits = db.session.scalars(select(AuditLog).where(AuditLog.action == "jobs.reconcile")).all()
    assert len(audits) >= 2
    assert set(reap_stuck_task() or {}) >= {"republished", "recovered", "orphans_requeued"}
    # The recorder reconciles; beat no longer needs to (nor a worker to run it).
    assert "celeriac-reap-stuck" not in beat_schedule
