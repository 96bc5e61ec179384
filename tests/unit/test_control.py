"""Queue pause registry, the worker-side reconcile plan, and the control API's refusals (W2).

The pause registry and heartbeats are real Redis (our own keys); broadcasts to workers go to
the in-memory worker control (app.backends.twins), which records them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import pytest
from sqlalchemy import select

from app.backends.current import Backends
from app.config import MonitoringConfig
from app.control import pauses
from app.control.supervisor import redacted, url_for_machine
from app.control.worker_side import plan
from app.control.workers import parse_n
from app.db import db
from app.errors import ValidationError
from app.models import AuditLog
from app.monitoring.workers import Heartbeat, write_heartbeat
from app.ratelimit import queue_limits
from tests.conftest import assert_problem

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("twins")]


def test_plan_cancels_paused_queues_and_brings_back_only_what_the_worker_wanted() -> None:
    start = plan({"a", "b"}, {"a", "b"}, {"a", "b"}, paused={"b"})
    assert start.cancel == ("b",) and start.add == () and start.wanted == {"a", "b"}
    # b was stopped by the pause: still wanted while paused, added back once resumed.
    held = plan({"a"}, {"a"}, set(start.wanted), paused={"b"})
    assert held.cancel == () and held.add == () and held.wanted == {"a", "b"}
    assert plan({"a"}, {"a"}, set(held.wanted), paused=set()).add == ("b",)


def test_plan_leaves_an_operators_cancel_and_add_alone() -> None:
    cancelled = plan({"a"}, {"a", "b"}, {"a", "b"}, paused=set())
    assert cancelled.wanted == {"a"} and cancelled.add == ()
    # Unless the queue was paused and resumed between two checks.
    assert plan({"a"}, {"a", "b"}, {"a", "b"}, paused=set(), settling={"b"}).add == ("b",)
    added = plan({"a", "c"}, {"a"}, {"a"}, paused=set())
    assert added.wanted == {"a", "c"} and added.cancel == ()
    # An operator adding a paused queue: it is cancelled now and comes back on resume.
    assert plan({"a", "c"}, {"a"}, {"a"}, paused={"c"}).cancel == ("c",)


def test_pause_registry_keeps_who_when_why_and_survives_resume(redis_client: Any, unique: str) -> None:
    queue = f"reg-{unique}"
    assert pauses.state_of(redis_client, queue) is None and not pauses.is_paused(redis_client, queue)
    pauses.pause(redis_client, queue, "user:1", "deploy", now=100.0)
    assert pauses.is_paused(redis_client, queue) and queue in pauses.paused_queues(redis_client)
    pauses.resume(redis_client, queue, "cli", None, now=200.0)
    state = pauses.state_of(redis_client, queue)
    assert state == pauses.PauseState(queue, False, "cli", 200.0, None)
    assert queue not in pauses.paused_queues(redis_client)


def test_parse_n_and_supervisor_urls() -> None:
    assert parse_n(None) == 1 and parse_n(64) == 64 and parse_n("3") == 3
    for bad in (0, 65, -1, True, 1.5, "x", [1]):
        with pytest.raises(ValidationError):
            parse_n(bad)
    one = "http://u:p@127.0.0.1:9001/RPC2"
    assert url_for_machine(one, "anything") == one
    pairs = "web1=http://u:p@10.0.0.1:9001/RPC2, web2=http://u:p@10.0.0.2:9001/RPC2"
    assert url_for_machine(pairs, "web2") == "http://u:p@10.0.0.2:9001/RPC2"
    assert url_for_machine(pairs, "web3") is None
    assert redacted(one) == "http://127.0.0.1:9001/RPC2"


def audit_rows(action: str, target: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)))


def test_pause_and_resume_need_admin_and_a_known_queue(
    client: Any, auth: Any, redis_client: Any, unique: str, twins: Backends
) -> None:
    queue = f"limited-{unique}"  # known through its rate limit (no worker of other tests consumes it)
    queue_limits.set_limit(redis_client, queue, 10, 60)
    url = f"/api/queues/{queue}/pause"
    assert_problem(client.post(url), 401)
    assert_problem(client.post(url, headers=auth("viewer")), 403)
    assert_problem(client.post(url, headers=auth("operator")), 403)
    admin = auth("admin")
    assert_problem(client.post("/api/queues/bad%20name!/pause", headers=admin), 422)
    assert_problem(client.post(f"/api/queues/never-used-{unique}/pause", headers=admin), 404)
    assert_problem(client.post(url, json=[1], headers=admin), 400)
    assert_problem(client.post(url, json={"why": "x"}, headers=admin), 400)
    assert not pauses.is_paused(redis_client, queue)  # refused requests changed nothing
    assert twins.workers.sent == []  # type: ignore[attr-defined]
    paused = client.post(url, json={"reason": "maintenance"}, headers=admin)
    assert paused.status_code == 200
    body = paused.get_json()
    assert body["queue"] == queue and body["paused"] is True and body["reason"] == "maintenance"
    assert body["by"].startswith("token:") and body["at"].endswith("+00:00")
    assert twins.workers.sent == [("cancel_consumer", {"queue": queue})]  # type: ignore[attr-defined]
    listed = client.get("/api/queues", headers=auth("viewer")).get_json()["queues"]
    assert {q["queue"]: q["paused"] for q in listed}[queue] is True
    [row] = audit_rows("queue.pause", queue)
    assert row.before == {"paused": False} and row.after == {"paused": True} and row.reason == "maintenance"
    resumed = client.post(f"/api/queues/{queue}/resume", headers=admin)
    assert resumed.status_code == 200 and resumed.get_json()["paused"] is False
    assert audit_rows("queue.resume", queue)[-1].before == {"paused": True}
    assert not pauses.is_paused(redis_client, queue)


def beat(hostname: str, last: float, queues: list[str]) -> Heartbeat:
    return Heartbeat(hostname, 4242, 2, 0, 0, queues, [], 10.0, last - 60, last)


def test_worker_commands_refuse_unknown_offline_and_silent_workers(
    app: Any, client: Any, auth: Any, redis_client: Any, unique: str, twins: Backends
) -> None:
    config = MonitoringConfig()
    settings = app.extensions["celeriac_settings"]
    app.extensions["celeriac_settings"] = dataclasses.replace(settings, control_reply_timeout_s=1)
    admin = auth("admin")
    offline, silent = f"gone-{unique}@host", f"silent-{unique}@host"
    write_heartbeat(redis_client, beat(offline, time.time() - 600, ["default"]), config)
    write_heartbeat(redis_client, beat(silent, time.time(), ["default"]), config)

    assert_problem(client.post(f"/api/workers/nobody-{unique}@host/shutdown", headers=admin), 404)
    assert "offline" in assert_problem(client.post(f"/api/workers/{offline}/pool-grow", headers=admin), 409)["detail"]
    assert_problem(client.post(f"/api/workers/{silent}/pool-grow", json={"n": 100}, headers=admin), 422)
    assert_problem(client.post(f"/api/workers/{silent}/cancel-consumer", json={"queue": "low"}, headers=admin), 422)
    assert_problem(client.post(f"/api/workers/{silent}/add-consumer", json={"queue": "a b"}, headers=admin), 422)
    assert_problem(client.post(f"/api/workers/{silent}/pool-grow", headers=auth("viewer")), 403)
    assert_problem(client.post(f"/api/workers/{silent}/pool-grow"), 401)
    assert audit_rows("worker.pool_grow", silent) == []
    # Its heartbeat says online, but no worker answers: 503, audited since it may still apply.
    no_reply = assert_problem(client.post(f"/api/workers/{silent}/pool-grow", json={"n": 1}, headers=admin), 503)
    assert "did not answer" in no_reply["detail"]
    assert [r.outcome for r in audit_rows("worker.pool_grow", silent)] == ["no_reply"]
    twins.workers.answers[silent] = {"ok": "pool will grow"}  # type: ignore[attr-defined]
    grown = client.post(f"/api/workers/{silent}/pool-grow", json={"n": 2}, headers=admin)
    assert grown.status_code == 200 and grown.get_json()["detail"] == "pool will grow"
    assert twins.workers.sent[-1] == ("pool_grow", {"n": 2, "destination": [silent]})  # type: ignore[attr-defined]
    restart = assert_problem(client.post(f"/api/workers/{silent}/restart", headers=admin), 409)
    assert "supervisord" in restart["detail"]


def test_openapi_lists_the_control_paths(client: Any, auth: Any) -> None:
    paths = client.get("/api/openapi.json", headers=auth("viewer")).get_json()["paths"]
    for path in ("/api/queues", "/api/queues/{name}/pause", "/api/queues/{name}/resume"):
        assert path in paths
    assert "restart" in paths["/api/workers/{hostname}/{action}"]["post"]["parameters"][1]["schema"]["enum"]


def test_cli_pauses_resumes_and_lists_queues_audited_as_cli(app: Any, redis_client: Any, unique: str) -> None:
    queue = f"cli-{unique}"
    queue_limits.set_limit(redis_client, queue, 5, 60)
    runner = app.test_cli_runner()
    paused = runner.invoke(args=["queues", "pause", queue, "--reason", "db migration"])
    assert paused.exit_code == 0, paused.output
    assert pauses.is_paused(redis_client, queue)
    listed = runner.invoke(args=["queues", "status"]).output
    assert f"{queue}  paused by cli since" in listed and "db migration" in listed
    [row] = audit_rows("queue.pause", queue)
    assert row.actor == "cli" and row.reason == "db migration"
    assert runner.invoke(args=["queues", "resume", queue]).exit_code == 0
    assert f"{queue}  running" in runner.invoke(args=["queues", "status"]).output
    bad = runner.invoke(args=["queues", "pause", "bad name!"])
    assert bad.exit_code == 1 and "Error: queue must be" in bad.output
    unknown = runner.invoke(args=["queues", "pause", f"nothing-{unique}"])
    assert unknown.exit_code == 1 and "no queue named" in unknown.output


def test_cli_worker_commands_explain_refusals(app: Any, redis_client: Any, unique: str) -> None:
    config = MonitoringConfig()
    listed, gone = f"listed-{unique}@host", f"gone-{unique}@host"
    write_heartbeat(redis_client, beat(listed, time.time(), ["default"]), config)
    write_heartbeat(redis_client, beat(gone, time.time() - 600, ["default"]), config)
    runner = app.test_cli_runner()
    status = runner.invoke(args=["workers", "status"])
    assert status.exit_code == 0 and f"{listed}  online" in status.output and f"{gone}  offline" in status.output
    as_json = runner.invoke(args=["workers", "status", "--json"])
    assert listed in {w["hostname"] for w in json.loads(as_json.output)}
    cases = [
        (["workers", "grow", f"nobody-{unique}@host"], "no worker named"),
        (["workers", "shrink", gone], "offline"),
        (["workers", "grow", listed, "-n", "0"], "n must be a whole number from 1 to 64"),
        (["workers", "cancel-consumer", listed, "low"], "does not consume 'low'"),
        (["workers", "restart", listed], "restart needs supervisord"),
    ]
    for args, message in cases:
        result = runner.invoke(args=args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert audit_rows("worker.pool_grow", listed) == []
