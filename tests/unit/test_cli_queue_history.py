"""`flask queue failed|retry|forget|flush`: the failed-job history at a shell, with readable
errors (exit 3) and the audit trail (actor "cli")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.models import AuditLog, FailureGroup, JobExecution
from tests.job_rows import add_job

pytestmark = [pytest.mark.redis]


def run(app: Any, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["queue", *args])


def exists(job_id: str) -> bool:
    db.session.expire_all()
    return db.session.get(JobExecution, job_id) is not None


def retries_of(job_id: str) -> list[JobExecution]:
    db.session.expire_all()
    return list(db.session.scalars(select(JobExecution).where(JobExecution.retry_of == job_id)))


def audit(action: str) -> list[AuditLog]:
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def failed(queue: str, tenant: str = "acme", **fields: Any) -> str:
    return add_job(tenant, "failed", queue=queue, exception_type="ValueError", error_message="bad value", **fields)


def test_failed_lists_the_newest_failed_jobs_with_their_error(app: Any, unique: str) -> None:
    queue = f"hist-{unique}"
    older, newer = failed(queue, minutes=1), failed(queue, minutes=2, job_class="demo.other")
    add_job("acme", "completed", queue=queue)
    listed = run(app, "failed", "--queue", queue)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[0] for line in lines] == [newer, older]
    assert f"{queue}  demo.echo  acme  ValueError: bad value" in lines[1]
    assert run(app, "failed", "--queue", queue, "--class", "demo.other").output.split()[0] == newer
    capped = run(app, "failed", "--queue", queue, "--limit", "1")
    assert capped.output.splitlines()[-1].startswith("The newest 1 are shown; more failed jobs match")
    assert run(app, "failed", "--queue", f"none-{unique}").output.strip() == "No failed jobs."
    bad = run(app, "failed", "--limit", "0")
    assert bad.exit_code == 3 and "limit must be from 1 to 200" in bad.output


def test_retry_by_id_runs_each_again_once_and_audits(app: Any, unique: str, recording_publisher: list[Any]) -> None:
    queue = f"hist-{unique}"
    job_id = failed(queue)
    done = run(app, "retry", job_id)
    assert done.exit_code == 0, done.output
    [new] = retries_of(job_id)
    assert "Retried 1, skipped 0." in done.output and f"New jobs: {new.id}" in done.output
    assert [job.job_id for job in recording_publisher] == [new.id]
    again = run(app, "retry", job_id)
    assert "Retried 0, skipped 1." in again.output and len(retries_of(job_id)) == 1
    entry = audit("job.bulk_retry")[-2]
    assert (entry.actor, entry.before, entry.after["retried"]) == ("cli", {"ids": [job_id]}, 1)


def test_retry_a_queue_or_a_failure_group(app: Any, unique: str, recording_publisher: list[Any]) -> None:
    queue, other = f"hist-{unique}", f"other-{unique}"
    mine, elsewhere = failed(queue), failed(other)
    by_queue = run(app, "retry", "--queue", queue)
    assert by_queue.exit_code == 0 and "Retried 1, skipped 0." in by_queue.output
    assert len(retries_of(mine)) == 1 and retries_of(elsewhere) == []
    assert audit("job.bulk_retry")[-1].target_id == f"status=failed&queue={queue}"

    fingerprint = unique.ljust(32, "0")
    grouped = [failed(other, tenant, fingerprint=fingerprint) for tenant in (f"a{unique}", f"b{unique}")]
    now = datetime.now(UTC)
    for tenant in (f"a{unique}", f"b{unique}"):
        db.session.add(FailureGroup(tenant_id=tenant, fingerprint=fingerprint, exception_type="ValueError",
                                    count=1, first_seen_at=now, last_seen_at=now))  # fmt: skip
    db.session.commit()
    by_group = run(app, "retry", "--group", fingerprint)
    assert by_group.exit_code == 0 and "Retried 2, skipped 0." in by_group.output
    assert all(len(retries_of(job_id)) == 1 for job_id in grouped) and retries_of(elsewhere) == []
    assert {a.tenant_id for a in audit("failure_group.retry") if fingerprint in a.target_id} == {
        f"a{unique}", f"b{unique}",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give job IDs, --all, --queue QUEUE or --group FINGERPRINT"),
        (["--all", "--queue", "default"], "(one of them)"),
        (["--queue", "never-used-queue"], "no queue 'never-used-queue'"),
        (["--group", "0" * 32], "no failure group"),
    ],
)
def test_retry_refusals_are_one_line_and_exit_3(app: Any, args: list[str], message: str) -> None:
    result = run(app, "retry", *args)
    assert result.exit_code == 3 and message in result.output and "Traceback" not in result.output


def test_retry_all_retries_every_failed_job(app: Any, unique: str, recording_publisher: list[Any]) -> None:
    job_id = failed(f"hist-{unique}")
    done = run(app, "retry", "--all")
    assert done.exit_code == 0, done.output
    assert len(retries_of(job_id)) == 1


def test_forget_deletes_failed_jobs_only(app: Any, unique: str) -> None:
    gone, kept = failed(f"hist-{unique}", tenant=f"t{unique}"), add_job("acme", "completed")
    result = run(app, "forget", gone, kept)
    assert result.exit_code == 3
    assert "Forgot 1 failed job." in result.output and f"not failed jobs (unknown ids, or not failed): {kept}" in (
        result.output
    )
    assert not exists(gone) and exists(kept)
    [entry] = [a for a in audit("job.forget") if a.target_id == gone]
    assert (entry.actor, entry.tenant_id) == ("cli", f"t{unique}")
    assert run(app, "forget").exit_code == 3


def test_flush_deletes_failed_history_by_queue_and_age(app: Any, unique: str) -> None:
    queue, other = f"hist-{unique}", f"other-{unique}"
    now = datetime.now(UTC)
    old, recent = failed(queue, failed_at=now - timedelta(days=3)), failed(queue, failed_at=now - timedelta(hours=1))
    elsewhere = failed(other, failed_at=now - timedelta(days=3))
    flushed = run(app, "flush", "--queue", queue, "--older-than", "2d")
    assert flushed.exit_code == 0, flushed.output
    assert "Flushed 1 failed job that failed before" in flushed.output
    assert (exists(old), exists(recent), exists(elsewhere)) == (False, True, True)
    entry = audit("queue.clear_failed")[-1]
    assert (entry.actor, entry.target_id, entry.after) == ("cli", queue, {"cleared": 1})
    assert run(app, "flush", "--queue", queue).output.strip().endswith("Flushed 1 failed job.")
    assert not exists(recent)


def test_flush_of_every_queue(app: Any, unique: str) -> None:
    ancient = datetime.now(UTC) - timedelta(days=4000)  # older than any other test's rows
    jobs = [failed(f"{name}-{unique}", failed_at=ancient) for name in ("a", "b")]
    result = run(app, "flush", "--older-than", "3650d")
    assert result.exit_code == 0 and f"a-{unique}: 1" in result.output and f"b-{unique}: 1" in result.output
    assert not any(exists(job_id) for job_id in jobs)


@pytest.mark.parametrize("age", ["3 weeks", "0d", "12", "7y"])
def test_flush_refuses_a_bad_duration(app: Any, age: str) -> None:
    result = run(app, "flush", "--older-than", age)
    assert result.exit_code == 3 and "write it like 30m, 12h or 7d" in result.output


def test_flush_of_an_unknown_queue_cannot_run(app: Any, unique: str) -> None:
    result = run(app, "flush", "--queue", f"none-{unique}")
    assert result.exit_code == 3 and "no queue" in result.output
