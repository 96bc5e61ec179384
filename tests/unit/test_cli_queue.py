"""`flask queue stats|clear|monitor|health|pause|resume|status`: output, exit codes, readable
errors, the audit trail, and `flask queues` as the older spelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from app.backends.current import Backends
from app.control import pauses
from app.db import db
from app.models import AuditLog, JobExecution
from app.monitoring import health
from app.monitoring.queue_stats import broker_depth
from tests.job_rows import add_job
from tests.unit.test_queue_clear import push, waiting

pytestmark = [pytest.mark.redis]


def run(app: Any, *args: str, **options: Any) -> Any:
    return app.test_cli_runner().invoke(args=["queue", *args], **options)


def status_of(job_id: str) -> str:
    db.session.expire_all()
    found = db.session.get(JobExecution, job_id)
    assert found is not None
    return found.status


def audit(action: str, target: str) -> list[AuditLog]:
    query = select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target).order_by(AuditLog.id)
    return list(db.session.scalars(query))


def one_line_error(result: Any, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    assert text in result.output and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.startswith("Error:")] != []


# --- clear ---


def test_clear_shows_the_count_and_refuses_without_force_off_a_terminal(
    app: Any, redis_client: Any, unique: str
) -> None:
    queue = f"cli-{unique}"
    job_id = waiting("acme", queue, redis_client)
    refused = run(app, "clear", queue)
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Queue {queue}: 1 message(s) waiting in the broker and 0 job(s) held")
    assert "add --force" in refused.output
    assert broker_depth(redis_client, queue) == 1 and status_of(job_id) == "pending"


def test_clear_with_force_removes_the_messages_cancels_the_jobs_and_audits(
    app: Any, redis_client: Any, unique: str
) -> None:
    queue = f"cli-{unique}"
    jobs = [waiting("acme", queue, redis_client, step) for step in (0, 3)]
    push(redis_client, queue, None, 9)
    done = run(app, "clear", queue, "--force", "--reason", "bad deploy")
    assert done.exit_code == 0, done.output
    assert "3 message(s)" in done.output.splitlines()[0]  # the count comes first
    assert f"Queue {queue}: cleared 3 (3 message(s) removed from the broker, 0 held job(s)); 2 job(s) cancelled." in (
        done.output
    )
    assert broker_depth(redis_client, queue) == 0 and {status_of(j) for j in jobs} == {"cancelled"}
    [entry] = audit("queue.clear", queue)
    assert (entry.actor, entry.reason, entry.before, entry.after["cleared"]) == (
        "cli", "bad deploy", {"messages": 3, "held": 0}, 3,
    )  # fmt: skip


def test_clear_asks_on_a_terminal(app: Any, redis_client: Any, unique: str, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = f"cli-{unique}"
    job_id = waiting("acme", queue, redis_client)
    monkeypatch.setattr("ops_ui.cli_queue.on_a_terminal", lambda: True)
    declined = run(app, "clear", queue, input="n\n")
    assert declined.exit_code == 1 and "Remove them and cancel their jobs (1)?" in declined.output
    assert status_of(job_id) == "pending"
    accepted = run(app, "clear", queue, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert status_of(job_id) == "cancelled"


def test_clear_of_one_tenant_and_of_an_empty_queue(app: Any, redis_client: Any, unique: str) -> None:
    queue = f"cli-{unique}"
    mine, theirs = waiting(f"a{unique}", queue, redis_client), waiting(f"b{unique}", queue, redis_client)
    scoped = run(app, "clear", queue, "--tenant", f"a{unique}", "--force")
    assert scoped.exit_code == 0 and f"1 message(s) of tenant a{unique}" in scoped.output
    assert (status_of(mine), status_of(theirs)) == ("cancelled", "pending")
    empty = run(app, "clear", f"empty-{unique}")
    assert empty.exit_code == 0 and "Nothing to clear." in empty.output


# --- stats, monitor, health ---


def test_stats_lists_the_queues_figures(app: Any, redis_client: Any, unique: str) -> None:
    queue = f"cli-{unique}"
    waiting("acme", queue, redis_client)
    add_job("acme", "processing", queue=queue)
    shown = run(app, "stats", queue)
    assert shown.exit_code == 0, shown.output
    header, line = shown.output.splitlines()
    assert header.split() == ["queue", "pending", "delayed", "running", "broker", "done/h", "failed/h", "p95",
                              "run", "oldest", "state"]  # fmt: skip
    assert line.split()[:5] == [queue, "1", "0", "1", "1"] and line.split()[-1] == "running"
    as_json = run(app, "stats", queue, "--json")
    assert '"broker_depth": 1' in as_json.output and '"processing": 1' in as_json.output
    everything = run(app, "stats")
    assert everything.exit_code == 0 and any(row.startswith(f"{queue} ") for row in everything.output.splitlines())


def test_stats_of_an_unknown_or_invalid_queue_cannot_run(app: Any, unique: str) -> None:
    one_line_error(run(app, "stats", f"nothing-{unique}"), 3, f"no queue named 'nothing-{unique}'")
    one_line_error(run(app, "stats", "no spaces"), 3, "queue must be 1-100 characters")


def test_monitor_exits_1_when_a_queue_is_over_its_limit(app: Any, redis_client: Any, unique: str) -> None:
    queue, calm = f"busy-{unique}", f"calm-{unique}"
    for _ in range(3):
        waiting("acme", queue, redis_client)
    waiting("acme", calm, redis_client)
    over = run(app, "monitor", f"{queue}:2", calm)
    assert over.exit_code == 1, over.output
    limit = app.extensions["celeriac_settings"].health.pending_warning
    assert f"{queue}  pending 3 (max 2)  OVER" in over.output
    assert f"{calm}  pending 1 (max {limit:,})  ok" in over.output
    assert run(app, "monitor", f"{queue}:3", calm).exit_code == 0


def test_monitor_max_wait_counts_the_oldest_ready_job(app: Any, redis_client: Any, unique: str) -> None:
    queue = f"slow-{unique}"
    add_job("acme", "pending", queue=queue, created_at=datetime.now(UTC) - timedelta(minutes=10))
    late = run(app, "monitor", queue, "--max-wait", "60")
    assert late.exit_code == 1 and "(max 60s)  OVER" in late.output
    assert run(app, "monitor", queue, "--max-wait", "3600").exit_code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["monitor"], "Missing argument"),
        (["monitor", "default:lots"], "MAX_PENDING must be a whole number"),
        (["monitor", "default", "--max-wait", "-1"], "--max-wait"),
        (["pause"], "give a QUEUE or --all"),
        (["resume", "default", "--all"], "give a QUEUE or --all"),
        (["clear"], "Missing argument 'QUEUE'"),
        (["clear", "bad name!", "--force"], "queue must be 1-100 characters"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_3(app: Any, args: list[str], message: str) -> None:
    one_line_error(run(app, *args), 3, message)


@pytest.mark.parametrize(("status", "code"), [("healthy", 0), ("warning", 1), ("critical", 2)])
def test_health_exit_code_follows_the_status(app: Any, monkeypatch: pytest.MonkeyPatch, status: str, code: int) -> None:
    report = health.Report()
    if status != "healthy":
        report.add(status, "queue q", "something is off", "do something")
    monkeypatch.setattr("ops_ui.cli_queue.dashboard.health_report", lambda *args: report)
    result = run(app, "health")
    assert result.exit_code == code and result.output.startswith(f"Status: {status}")
    if status != "healthy":
        assert f"[{status}] queue q: something is off" in result.output and "  - do something" in result.output


def test_health_reads_the_real_figures(app: Any) -> None:
    result = run(app, "health", "--json")
    assert '"status"' in result.output
    status = result.output.split('"status": "')[1].split('"')[0]
    assert result.exit_code == {"healthy": 0, "warning": 1, "critical": 2}[status]


# --- backends unreachable ---


def test_redis_unreachable_is_one_line_and_exit_3(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    monkeypatch.setattr("ops_ui.cli_queue_control.get_redis", lambda url: dead)
    one_line_error(run(app, "status"), 3, "Redis is unreachable")
    assert "check REDIS_URL" in run(app, "stats").output


def test_database_unreachable_is_one_line_and_exit_3(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any) -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr("ops_ui.cli_queue.stats_of_queues", down)
    one_line_error(run(app, "monitor", "default"), 3, "the database is unreachable (connection refused)")


# --- pause, resume, status; the older spelling ---


def test_pause_and_resume_one_queue_or_all_audited_as_cli(
    app: Any, redis_client: Any, unique: str, twins: Backends
) -> None:
    queue = f"cli-{unique}"
    waiting("acme", queue, redis_client)
    paused = run(app, "pause", queue, "--reason", "deploy")
    assert paused.exit_code == 0 and f"Paused {queue}" in paused.output
    assert f"{queue}  paused by cli since" in run(app, "status").output
    every = run(app, "pause", "--all")
    assert every.exit_code == 0, every.output
    assert f"Paused {queue}" not in every.output and "Paused default" in every.output
    assert {"default", queue} <= pauses.paused_queues(redis_client)
    resumed = run(app, "resume", "--all")
    assert resumed.exit_code == 0 and f"Resumed {queue}." in resumed.output and "Resumed default." in resumed.output
    assert pauses.paused_queues(redis_client) == set()
    assert run(app, "resume", "--all").output.strip() == "No queue is paused."
    assert [(a.actor, a.reason) for a in audit("queue.pause", queue)] == [("cli", "deploy")]
    assert len(audit("queue.resume", queue)) == 1
    one_line_error(run(app, "pause", f"nothing-{unique}"), 3, "no queue named")


def test_the_older_spelling_runs_the_same_commands_with_its_old_exit_codes(
    app: Any, redis_client: Any, unique: str
) -> None:
    queue = f"cli-{unique}"
    waiting("acme", queue, redis_client)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["queues", "stats", queue]).output == run(app, "stats", queue).output
    bad = runner.invoke(args=["queues", "stats", f"nothing-{unique}"])
    assert bad.exit_code == 1 and "no queue named" in bad.output
    assert runner.invoke(args=["queues", "pause"]).exit_code == 2  # click's usage error, as before
    assert runner.invoke(args=["queues", "clear", queue]).exit_code == 1  # not confirmed
