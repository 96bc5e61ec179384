"""`flask jobs bulk`: preview, confirmation, start, readable errors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.db import db
from app.models import AuditLog, JobExecution
from tests.job_rows import add_job


def test_preview_prints_the_count_and_five_ids_and_starts_nothing(app: Any, unique: str) -> None:
    tenant = f"t{unique}"
    ids = [add_job(tenant, "failed", minutes=n) for n in range(6)]
    result = app.test_cli_runner().invoke(
        args=["jobs", "bulk", "--action", "retry", "--status", "failed", "--tenant", tenant, "--preview"]
    )
    assert result.exit_code == 0, result.output
    assert f"6 jobs of tenant {tenant} match" in result.output
    assert [line.strip() for line in result.output.splitlines()[1:]] == list(reversed(ids))[:5]


def test_start_needs_a_confirmation_then_prints_the_bulk_jobs_id(
    app: Any, unique: str, recording_publisher: list[Any]
) -> None:
    tenant = f"t{unique}"
    add_job(tenant, "completed")
    args = ["jobs", "bulk", "--action", "purge", "--tenant", tenant, "--reason", "cleanup"]
    refused = app.test_cli_runner().invoke(args=args)
    assert refused.exit_code == 1 and "add --yes" in refused.output
    assert recording_publisher == []
    started = app.test_cli_runner().invoke(args=[*args, "--yes"])
    assert started.exit_code == 0, started.output
    job_id = started.output.strip().splitlines()[-1].split()[3]
    row = db.session.get(JobExecution, job_id)
    assert row is not None and row.job_class == "celeriac.bulk" and row.tenant_id == tenant
    entry = db.session.scalars(select(AuditLog).where(AuditLog.target_id == job_id)).one()
    assert entry.actor == "cli" and entry.reason == "cleanup"


def test_bad_filters_print_one_readable_line_and_exit_3(app: Any) -> None:
    runner = app.test_cli_runner()
    bad_time = runner.invoke(args=["jobs", "bulk", "--action", "retry", "--created-before", "soon", "--preview"])
    assert bad_time.exit_code == 3 and "created_before is not a date" in bad_time.output
    bad_status = runner.invoke(args=["jobs", "bulk", "--action", "retry", "--status", "pending", "--preview"])
    assert bad_status.exit_code == 3 and "retry applies to jobs that are failed or cancelled" in bad_status.output
    bad_action = runner.invoke(args=["jobs", "bulk", "--action", "explode"])
    assert bad_action.exit_code == 2 and "explode" in bad_action.output
