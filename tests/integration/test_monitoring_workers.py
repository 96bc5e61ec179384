"""Worker registry, stuck detection and orphan recovery against real prefork workers (M2, M3, R1)."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from app.config import MonitoringConfig
from app.db import db
from app.models import JobExecution
from app.monitoring.workers import list_workers
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess

#: Heartbeat every second, offline after 3 s: what the workers of this module run with.
FAST = MonitoringConfig(heartbeat_interval_s=1, offline_after_s=3, forget_after_s=120, reap_after_s=3)


@pytest.fixture()
def fast_env(monkeypatch: pytest.MonkeyPatch, app: Any) -> Any:
    monkeypatch.setenv("CELERIAC_WORKER_HEARTBEAT_S", "1")
    settings = app.extensions["celeriac_settings"]
    app.extensions["celeriac_settings"] = dataclasses.replace(settings, monitoring=FAST)
    return app


def kill_whole(worker: WorkerProcess) -> None:
    """SIGKILL the main process and its pool children: a machine that died."""
    for pid in [*worker.children(), worker.process.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.process.wait(timeout=10)
    worker.log.close()


def start(tmp_path: Path, name: str, queues: str, concurrency: int = 2) -> tuple[WorkerProcess, str]:
    hostname = f"{name}@{socket.gethostname()}"
    return WorkerProcess(tmp_path / f"{name}.log", queues=queues, concurrency=concurrency, hostname=hostname), hostname


def entry(redis_client: Any, hostname: str) -> Any:
    return next((w for w in list_workers(redis_client, FAST) if w.heartbeat.hostname == hostname), None)


def test_worker_online_with_queues_then_offline_after_kill(
    fast_env: Any, client: Any, auth: Any, redis_client: Any, tmp_path: Path, unique: str
) -> None:
    worker, hostname = start(tmp_path, f"mon-{unique}", f"mon-a-{unique},mon-b-{unique}", concurrency=3)
    try:
        online = wait_for(lambda: entry(redis_client, hostname), timeout=10, what="first heartbeat")
        assert online.status == "online"
        assert online.heartbeat.queues == sorted([f"mon-a-{unique}", f"mon-b-{unique}"])
        assert online.heartbeat.pool_size == 3
        assert online.heartbeat.rss_mb > 0
        listed = client.get("/api/admin/queue/workers", headers=auth("viewer")).get_json()["workers"]
        assert [w["status"] for w in listed if w["hostname"] == hostname] == ["online"]
    finally:
        kill_whole(worker)
    wait_for(lambda: entry(redis_client, hostname).status == "offline", timeout=10, what="offline after kill")
    listed = client.get("/api/admin/queue/workers", headers=auth("viewer")).get_json()["workers"]
    assert [w["status"] for w in listed if w["hostname"] == hostname] == ["offline"]


def dispatch_sleep(client: Any, headers: dict[str, str], queue: str) -> str:
    answer = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.sleep", "payload": {"seconds": 60}, "options": {"queue": queue}},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    job_id: str = answer.get_json()["id"]
    return job_id


def status(job_id: str) -> str:
    db.session.expire_all()
    row = db.session.get(JobExecution, job_id)
    return row.status if row is not None else "missing"


def test_killed_worker_job_is_stuck_then_requeued_live_worker_job_untouched(
    fast_env: Any, recorder: Any, client: Any, auth: Any, redis_client: Any, tmp_path: Path, unique: str
) -> None:
    headers = auth("operator")
    doomed, doomed_host = start(tmp_path, f"doomed-{unique}", f"mon-doomed-{unique}", concurrency=1)
    alive, alive_host = start(tmp_path, f"alive-{unique}", f"mon-alive-{unique}", concurrency=1)
    try:
        orphan = dispatch_sleep(client, headers, f"mon-doomed-{unique}")
        running = dispatch_sleep(client, headers, f"mon-alive-{unique}")
        wait_for(lambda: status(orphan) == status(running) == "processing", what="both jobs running")
        kill_whole(doomed)

        def stuck_ids() -> dict[str, Any]:
            items = client.get("/api/monitoring/stuck", headers=auth("viewer")).get_json()["items"]
            return {i["id"]: i for i in items}

        found = wait_for(lambda: orphan in stuck_ids() and stuck_ids(), timeout=10, what="orphan listed as stuck")
        assert found[orphan]["reasons"] == ["worker_offline"]
        assert found[orphan]["worker_id"] == doomed_host
        assert running not in found
        # Other tenants never see it.
        other_tenant = client.get("/api/monitoring/stuck", headers=auth("viewer", f"x-{unique}")).get_json()
        assert orphan not in {i["id"] for i in other_tenant["items"]}

        from app.recorder import reconcile_once

        settings = fast_env.extensions["celeriac_settings"]
        quick = dataclasses.replace(
            settings, reliability=dataclasses.replace(settings.reliability, reconcile_grace_s=1, clock_skew_s=0)
        )
        # The orphan goes back to its queue (no worker consumes it now); the live one stays.
        wait_for(
            lambda: (reconcile_once(quick, redis_client, f"test-{unique}") or None) and status(orphan) == "retrying",
            timeout=20,
            what="orphan put back in its queue",
        )
        assert status(running) == "processing"
        assert entry(redis_client, alive_host).status == "online"
        assert orphan not in stuck_ids()
    finally:
        if doomed.process.poll() is None:
            kill_whole(doomed)
        kill_whole(alive)
