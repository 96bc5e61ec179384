"""`flask jobs bulk`: retry, cancel or purge every job of a tenant matching a filter, as a tracked job.

Prints the preview (count and 5 ids), asks to confirm (or `--yes`), then starts the
`celeriac.bulk` job and prints its id; `--wait` follows its progress to the end.
A command that cannot run prints one readable line and exits 3.
"""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import click

from app.backends.current import backends
from app.errors import AppError
from app.kernel import lookup
from app.models import TERMINAL_STATUSES, ExecutionStatus
from app.services import bulk_jobs
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

jobs = click.Group("jobs", help="Work on many jobs at once.")

#: Seconds between two looks at a bulk job's progress (--wait).
POLL_S = 1.0


def _fail(message: str, code: int = 3) -> NoReturn:
    sql().rollback()
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def _follow(job_id: str) -> None:
    shown: tuple[Any, ...] = ()
    while True:
        sql().expire_all()
        row = lookup.get_job(sql(), job_id, None)
        now = (row.status, row.progress, row.progress_message)
        if now != shown:
            click.echo(f"{row.status} {row.progress if row.progress is not None else 0}% {row.progress_message or ''}")
            shown = now
        if ExecutionStatus(row.status) in TERMINAL_STATUSES:
            if row.status != ExecutionStatus.COMPLETED.value:
                _fail(f"bulk job {job_id} {row.status}: {row.error_message or ''}", 1)
            return
        time.sleep(POLL_S)


@jobs.command("bulk")
@click.option("--action", required=True, type=click.Choice(list(bulk_jobs.ROLES)), help="What to do.")
@click.option("--tenant", default=None, help="The tenant whose jobs (default: CELERIAC_DEFAULT_TENANT).")
@click.option("--status", default=None, help="Only jobs in this status.")
@click.option("--queue", default=None)
@click.option("--job-class", "job_class", default=None)
@click.option("--tag", default=None)
@click.option("--created-before", default=None, help="ISO 8601 time.")
@click.option("--created-after", default=None, help="ISO 8601 time.")
@click.option("--reason", default=None, help="Kept in the audit log.")
@click.option("--preview", is_flag=True, help="Only count (and show 5 ids); start nothing.")
@click.option("--yes", is_flag=True, help="Start without asking.")
@click.option("--wait", is_flag=True, help="Follow the bulk job's progress until it ends.")
def bulk_command(
    action: str, tenant: str | None, preview: bool, yes: bool, wait: bool, reason: str | None, **flt: Any
) -> None:
    """Retry, cancel or purge every job of a tenant matching the filter (any number of jobs)."""
    settings = app_settings()
    raw = {key: value for key, value in flt.items() if value is not None}
    try:
        request = bulk_jobs.bulk_request(action, raw, tenant or settings.default_tenant)
        found = bulk_jobs.preview(sql(), request)
    except AppError as exc:
        _fail(str(exc))
    click.echo(f"{found.count} jobs of tenant {request.tenant_id} match; {action} would touch them all.")
    for job_id in found.sample:
        click.echo(f"  {job_id}")
    if preview:
        return
    if not yes:
        if not sys.stdin.isatty():
            _fail("not confirmed: add --yes to start without a terminal", 1)
        click.confirm(f"Start a bulk {action} of {found.count} jobs?", abort=True)
    current = backends()
    used = bulk_jobs.Backends(current.registry, current.publisher, current.canceller, settings)
    try:
        job_id = bulk_jobs.dispatch_bulk(sql(), request, actor="cli", reason=reason, backends=used)
    except AppError as exc:
        _fail(str(exc))
    record_cli_action(
        "job.bulk_requested",
        "bulk_job",
        job_id,
        tenant_id=request.tenant_id,
        before={"filter": request.filter_dict(), "action": action},
        reason=reason,
    )
    click.echo(f"Started bulk job {job_id} (progress: GET /api/jobs/{job_id}, or the console's job page)")
    if wait:
        _follow(job_id)
