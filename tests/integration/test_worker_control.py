"""Worker commands through the API against a real prefork worker (W2)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog
from app.monitoring.workers import find_worker
from tests.conftest import assert_problem, wait_for
from tests.integration.conftest import WorkerProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]


@pytest.fixture()
def fast_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_WORKER_HEARTBEAT_S", "1")
    monkeypatch.setenv("CELERIAC_QUEUE_PAUSE_CHECK_S", "1")


def audited(action: str, hostname: str) -> list[AuditLog]:
    db.session.expire_all()
    query = select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == hostname)
    return list(db.session.scalars(query))


def test_pool_and_consumer_commands_change_the_worker_and_shutdown_takes_it_offline(
    fast_env: None, client: Any, auth: Any, redis_client: Any, tmp_path: Path, unique: str
) -> None:
    first, second = f"ctl-a-{unique}", f"ctl-b-{unique}"
    hostname = f"ctl-{unique}@{socket.gethostname()}"
    admin = auth("admin")
    worker = WorkerProcess(tmp_path / "ctl.log", queues=f"{first},{second}", hostname=hostname)
    url = f"/api/workers/{hostname}"

    def beat() -> Any:
        return find_worker(redis_client, hostname)

    try:
        wait_for(beat, timeout=15, what="first heartbeat")
        grown = client.post(f"{url}/pool-grow", json={"n": 2, "reason": "backlog"}, headers=admin)
        assert grown.status_code == 200, grown.get_json()
        assert grown.get_json()["status"] == "done"
        wait_for(lambda: beat().pool_size == 4, timeout=10, what="pool of 4")
        assert client.post(f"{url}/pool-shrink", json={"n": 1}, headers=admin).status_code == 200
        wait_for(lambda: beat().pool_size == 3, timeout=10, what="pool of 3")
        [row] = audited("worker.pool_grow", hostname)
        assert row.reason == "backlog" and row.after["request"] == {"n": 2, "reason": "backlog"}

        for bad in (0, 65, "two", True, 1.5):
            assert_problem(client.post(f"{url}/pool-grow", json={"n": bad}, headers=admin), 422)
        assert_problem(client.post(f"{url}/cancel-consumer", json={"queue": "not-mine"}, headers=admin), 422)
        assert_problem(client.post(f"{url}/cancel-consumer", json={}, headers=admin), 422)
        assert_problem(client.post(f"{url}/pool-grow", json={"m": 1}, headers=admin), 400)
        assert_problem(client.post(f"{url}/reboot", headers=admin), 404)
        assert_problem(client.post(f"/api/workers/nobody-{unique}@nowhere/pool-grow", headers=admin), 404)
        assert_problem(client.post(f"{url}/pool-grow", headers=auth("operator")), 403)
        restart = assert_problem(client.post(f"{url}/restart", headers=admin), 409)
        assert "CELERIAC_SUPERVISOR_URL" in restart["detail"]
        assert beat().pool_size == 3  # refused commands changed nothing

        cancelled = client.post(f"{url}/cancel-consumer", json={"queue": second}, headers=admin)
        assert cancelled.status_code == 200, cancelled.get_json()
        wait_for(lambda: beat().queues == [first], timeout=10, what="consumer cancelled")
        # The pause reconciler learns this was an operator's cancel and does not undo it.
        from tests.integration.test_queue_pause import control_state

        wait_for(lambda: control_state(redis_client, hostname)["wanted"] == [first], timeout=10, what="wanted")
        assert client.post(f"{url}/add-consumer", json={"queue": second}, headers=admin).status_code == 200
        wait_for(lambda: beat().queues == sorted([first, second]), timeout=10, what="consumer added")

        stopping = client.post(f"{url}/shutdown", headers=admin)
        assert stopping.status_code == 202 and stopping.get_json()["status"] == "accepted"
        wait_for(lambda: worker.process.poll() is not None, timeout=30, what="the worker to exit")
        assert worker.process.returncode == 0
        offline = assert_problem(client.post(f"{url}/pool-grow", headers=admin), 409)
        assert "offline" in offline["detail"]
        assert len(audited("worker.shutdown", hostname)) == 1
    finally:
        worker.stop()
