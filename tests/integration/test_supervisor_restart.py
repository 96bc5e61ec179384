"""Restarting a worker through a real supervisord's XML-RPC interface (W2)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.control.supervisor import Supervisor
from app.errors import BackendUnavailable, NotFound
from app.monitoring.workers import find_worker
from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]

USER, PASSWORD = "celeriac", "test-secret-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Supervisord:
    """supervisord (from the supervisor package) with an HTTP XML-RPC interface and two programs."""

    def __init__(self, directory: Path, worker_hostname: str, worker_queue: str) -> None:
        self.port = free_port()
        self.url = f"http://{USER}:{PASSWORD}@127.0.0.1:{self.port}/RPC2"
        celery = f"{sys.executable} -m celery -A app.celery_app worker -Q {worker_queue} -c 1 -n {worker_hostname}"
        config = directory / "supervisord.conf"
        config.write_text(
            f"""[supervisord]
logfile={directory}/supervisord.log
pidfile={directory}/supervisord.pid
nodaemon=true

[inet_http_server]
port=127.0.0.1:{self.port}
username={USER}
password={PASSWORD}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sleeper]
command={sys.executable} -c "import time; time.sleep(600)"
startsecs=0
stopwaitsecs=5

[program:worker]
command={celery} --without-gossip --without-mingle --without-heartbeat
directory={ROOT}
startsecs=1
stopsignal=TERM
stopasgroup=false
killasgroup=true
stopwaitsecs=30
redirect_stderr=true
stdout_logfile={directory}/worker.log

[group:celeriac]
programs=worker
"""
        )
        binary = Path(sys.executable).parent / "supervisord"
        self.process = subprocess.Popen(
            [str(binary), "-c", str(config)], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL
        )
        client = Supervisor(self.url)
        wait_for(lambda: self._running(client, "sleeper"), timeout=20, what="supervisord up")

    @staticmethod
    def _running(client: Supervisor, name: str) -> bool:
        try:
            return client.info(name)["statename"] == "RUNNING"
        except BackendUnavailable:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture()
def supervisord(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unique: str) -> Iterator[tuple[Supervisord, str]]:
    monkeypatch.setenv("CELERIAC_WORKER_HEARTBEAT_S", "1")
    hostname = f"sup-{unique}@{socket.gethostname()}"
    server = Supervisord(tmp_path, hostname, f"sup-{unique}")
    yield server, hostname
    server.stop()


def test_client_restarts_a_program_and_reports_bad_names_and_credentials(supervisord: tuple[Supervisord, str]) -> None:
    server, _ = supervisord
    client = Supervisor(server.url)
    before = client.info("sleeper")["pid"]
    after = client.restart("sleeper")
    assert after != before and client.info("sleeper")["statename"] == "RUNNING"
    with pytest.raises(NotFound):
        client.info("no-such-program")
    wrong = Supervisor(server.url.replace(PASSWORD, "wrong"))
    with pytest.raises(BackendUnavailable) as refused:
        wrong.info("sleeper")
    assert "401" in str(refused.value) and "wrong" not in str(refused.value)
    with pytest.raises(BackendUnavailable):
        Supervisor(f"http://127.0.0.1:{free_port()}/RPC2").info("sleeper")


def test_api_restart_goes_through_supervisord_and_the_worker_comes_back_with_a_new_pid(
    supervisord: tuple[Supervisord, str], app: Any, client: Any, auth: Any, redis_client: Any
) -> None:
    server, hostname = supervisord
    first = wait_for(lambda: find_worker(redis_client, hostname), timeout=30, what="the supervised worker's heartbeat")
    from tests.integration.test_queue_pause import control_state

    state = wait_for(lambda: control_state(redis_client, hostname), timeout=15, what="control state")
    assert state["supervisor"] == {"group": "celeriac", "process": "worker", "name": "celeriac:worker"}

    settings = app.extensions["celeriac_settings"]
    app.extensions["celeriac_settings"] = dataclasses.replace(settings, supervisor_url=server.url)
    answer = client.post(f"/api/workers/{hostname}/restart", json={"reason": "new code"}, headers=auth("admin"))
    assert answer.status_code == 202, answer.get_json()
    assert "celeriac:worker" in answer.get_json()["detail"]

    def restarted() -> Any:
        beat = find_worker(redis_client, hostname)
        return beat if beat and beat.pid != first.pid and beat.stopped_at is None else None

    again = wait_for(restarted, timeout=60, what="the worker back with a new pid")
    assert Supervisor(server.url).info("celeriac:worker")["pid"] == again.pid
    # The CLI waits for the restart and prints both pids.
    result = app.test_cli_runner().invoke(args=["workers", "restart", hostname, "--reason", "cli restart"])
    assert result.exit_code == 0, result.output
    assert f"supervisord restarted celeriac:worker: pid {again.pid} -> " in result.output
    assert Supervisor(server.url).info("celeriac:worker")["pid"] != again.pid
