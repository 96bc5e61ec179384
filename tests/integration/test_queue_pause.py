"""Pausing a queue against real prefork workers (W2): held everywhere, across a restart, released on resume."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest

from app import redis_keys
from app.monitoring.queue_stats import broker_depth
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.fixture()
def fast_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started by these tests re-check the paused queues every second."""
    monkeypatch.setenv("CELERIAC_QUEUE_PAUSE_CHECK_S", "1")
    monkeypatch.setenv("CELERIAC_WORKER_HEARTBEAT_S", "1")


def dispatch(client: Any, headers: dict[str, str], queue: str, value: str) -> str:
    answer = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "payload": {"value": value}, "options": {"queue": queue}},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    job_id: str = answer.get_json()["id"]
    return job_id


def status(client: Any, headers: dict[str, str], job_id: str) -> str:
    value: str = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()["status"]
    return value


def control_state(redis_client: Any, hostname: str) -> dict[str, Any] | None:
    raw = redis_client.get(redis_keys.worker_control(hostname))
    return json.loads(raw) if raw else None


def test_paused_queue_holds_jobs_across_a_worker_restart_and_resume_releases_them(
    fast_checks: None, recorder: Any, client: Any, auth: Any, redis_client: Any, tmp_path: Path, unique: str
) -> None:
    held, free = f"held-{unique}", f"free-{unique}"
    hostname = f"pause-{unique}@{socket.gethostname()}"
    admin, operator = auth("admin"), auth("operator")
    worker = WorkerProcess(tmp_path / "first.log", queues=f"{held},{free}", hostname=hostname)
    try:
        wait_for(lambda: control_state(redis_client, hostname), timeout=15, what="the worker's control state")
        paused = client.post(f"/api/queues/{held}/pause", json={"reason": "deploy"}, headers=admin)
        assert paused.status_code == 200, paused.get_json()
        assert paused.get_json()["paused"] is True and paused.get_json()["reason"] == "deploy"

        # Dispatched first, and -Q lists it first: it would run first if the pause did not hold it.
        waiting = dispatch(client, operator, held, "waits")
        runs = dispatch(client, operator, free, "runs")
        wait_for(lambda: status(client, operator, runs) == "completed", timeout=30, what="the other queue's job")
        assert status(client, operator, waiting) == "pending"
        assert broker_depth(redis_client, held) == 1  # still in Redis: no worker fetched it

        # A new worker process (a restart) reads the registry and does not consume the paused queue.
        worker.stop()
        worker = WorkerProcess(tmp_path / "second.log", queues=f"{held},{free}", hostname=hostname)
        wait_for(
            lambda: (control_state(redis_client, hostname) or {}).get("held") == [held],
            timeout=15,
            what="the restarted worker holding the paused queue",
        )
        again = dispatch(client, operator, free, "runs again")
        wait_for(lambda: status(client, operator, again) == "completed", timeout=30, what="a job after the restart")
        assert status(client, operator, waiting) == "pending"
        assert broker_depth(redis_client, held) == 1
        assert "is paused" in worker.log_path.read_text()

        resumed = client.post(f"/api/queues/{held}/resume", headers=admin)
        assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
        wait_for(lambda: status(client, operator, waiting) == "completed", timeout=30, what="the held job after resume")
        assert broker_depth(redis_client, held) == 0
        listed = client.get("/api/queues", headers=operator).get_json()["queues"]
        assert {"queue": held, "paused": False}.items() <= next(q for q in listed if q["queue"] == held).items()
    finally:
        worker.stop()


def test_pause_reaches_a_running_worker_within_seconds_and_spares_its_other_queues(
    fast_checks: None, recorder: Any, client: Any, auth: Any, redis_client: Any, tmp_path: Path, unique: str
) -> None:
    held, free = f"hold-{unique}", f"keep-{unique}"
    hostname = f"live-{unique}@{socket.gethostname()}"
    admin = auth("admin")
    worker = WorkerProcess(tmp_path / "live.log", queues=f"{held},{free}", hostname=hostname)
    try:
        wait_for(lambda: control_state(redis_client, hostname), timeout=15, what="the worker's control state")
        assert client.post(f"/api/queues/{held}/pause", headers=admin).status_code == 200

        def consumed() -> list[str]:
            from app.monitoring.workers import find_worker

            beat = find_worker(redis_client, hostname)
            return beat.queues if beat else []

        wait_for(lambda: consumed() == [free], timeout=10, what="the worker to stop consuming the paused queue")
        assert client.post(f"/api/queues/{held}/resume", headers=admin).status_code == 200
        wait_for(lambda: consumed() == sorted([held, free]), timeout=10, what="the worker to consume it again")
    finally:
        worker.stop()
