"""`flask queue failed|retry|forget|flush`: the failed-job history at a shell (Laravel's
`queue:failed`, `queue:retry`, `queue:forget`, `queue:flush`), every tenant's.

Each reuses the service the console and the API use (job_search, bulk_actions,
failures.dead_letter), and each change is audited with actor "cli", filed under the tenant
of what changed where there is one. Errors are ClickExceptions: `flask queue` prints them
as one line and exits 3 (ops_ui/cli_queue.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import select

from app.backends.current import backends
from app.errors import AppError, NotFound
from app.failures import dead_letter
from app.models import ExecutionStatus, FailureGroup, JobExecution
from app.services import bulk_actions, job_search
from app.services.jobs import MAX_PAGE
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

_FAILED = ExecutionStatus.FAILED.value
#: Seconds a bulk retry from the shell may run (the web's 25 s budget is for a request).
RETRY_BUDGET_S = 3600.0
#: Longest error text shown per failed job.
ERROR_CHARS = 90
_DURATION = re.compile(r"^(\d+)([mhd])$")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400}


def _dispatching() -> dict[str, Any]:
    used = backends()
    return {"registry": used.registry, "publisher": used.publisher, "settings": app_settings()}


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment is not None else "-"


def _error(row: JobExecution) -> str:
    text = " ".join((row.error_message or "").split())
    text = f"{row.exception_type}: {text}" if row.exception_type else text
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


@click.command("failed")
@click.option("--queue", "queue_name", default=None, help="Only this queue's.")
@click.option("--class", "job_class", default=None, help="Only this job class's.")
@click.option("--limit", type=int, default=50, show_default=True, help=f"Most jobs listed (1-{MAX_PAGE}).")
def queue_failed(queue_name: str | None, job_class: str | None, limit: int) -> None:
    """List failed jobs, newest first.

    One line each: id, when it failed (UTC), queue, class, tenant and error.
    """
    query = job_search.JobQuery(None, status=_FAILED, queue=queue_name, job_class=job_class)
    try:
        page = job_search.search(sql(), query, limit=limit)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc
    if not page.rows:
        click.echo("No failed jobs.")
        return
    for row in page.rows:
        click.echo(
            f"{row.id}  {_when(row.failed_at or row.updated_at)}  {row.queue}  {row.job_class}  "
            f"{row.tenant_id}  {_error(row)}"
        )
    if page.next_cursor:
        click.echo(f"The newest {limit} are shown; more failed jobs match (--limit up to {MAX_PAGE}).")


def _report(outcome: bulk_actions.BulkOutcome) -> None:
    click.echo(outcome.message())
    if outcome.new_ids and len(outcome.new_ids) <= 20:
        click.echo("New jobs: " + ", ".join(outcome.new_ids))
    if outcome.error:
        raise click.ClickException(f"the broker failed part-way: {outcome.error}")


def _audit_retry(
    target_type: str,
    target: str,
    before: dict[str, Any],
    outcome: bulk_actions.BulkOutcome,
    tenant_id: str | None = None,
    action: str = "job.bulk_retry",
) -> None:
    record_cli_action(
        action,
        target_type,
        target,
        tenant_id=tenant_id,
        before=before,
        after=outcome.as_dict(),
        outcome="ok" if outcome.error is None else "partial",
    )


def _retry_group(fingerprint: str) -> bulk_actions.BulkOutcome:
    """Retry a failure group in every tenant that has it, each audited under its tenant."""
    groups = list(sql().scalars(select(FailureGroup).where(FailureGroup.fingerprint == fingerprint)))
    if not groups:
        raise NotFound(f"no failure group {fingerprint!r} (the Failed page and GET /api/monitoring/failures list them)")
    total = bulk_actions.BulkOutcome("retry")
    for group in groups:
        outcome = bulk_actions.retry_failure_group(
            sql(), group.tenant_id, fingerprint, time_budget_s=RETRY_BUDGET_S, **_dispatching()
        )
        before: dict[str, Any] = {"exception_type": group.exception_type, "count": group.count}
        target = f"{group.tenant_id}/{fingerprint}"
        _audit_retry("failure_group", target, before, outcome, group.tenant_id, "failure_group.retry")
        total.done += outcome.done
        total.skipped += outcome.skipped
        total.truncated = total.truncated or outcome.truncated
        total.error = total.error or outcome.error
        total.new_ids += outcome.new_ids
        if outcome.error:
            break
    return total


@click.command("retry")
@click.argument("ids", metavar="[ID]...", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every failed job not retried yet.")
@click.option("--queue", "queue_name", default=None, help="Every failed job of QUEUE not retried yet.")
@click.option("--group", "fingerprint", default=None, help="Every failed job of a failure group (its fingerprint).")
def queue_retry(ids: tuple[str, ...], every: bool, queue_name: str | None, fingerprint: str | None) -> None:
    """Run failed jobs again: IDs, --all, --queue or --group.

    Each runs again as a new job. A job retried before is skipped, so running it twice never runs a job twice.
    """
    if sum((bool(ids), every, queue_name is not None, fingerprint is not None)) != 1:
        raise click.UsageError("give job IDs, --all, --queue QUEUE or --group FINGERPRINT (one of them)")
    try:
        if ids:
            outcome = bulk_actions.retry_selected(sql(), ids, None, **_dispatching())
            _audit_retry("jobs", f"selection of {len(set(ids))}", {"ids": sorted(set(ids))}, outcome)
        elif fingerprint is not None:
            outcome = _retry_group(fingerprint)
        else:
            if queue_name is not None:
                dead_letter.ensure_queue_known(sql(), None, queue_name)
            query = job_search.JobQuery(None, status=_FAILED, queue=queue_name)
            outcome = bulk_actions.retry_matching(sql(), query, time_budget_s=RETRY_BUDGET_S, **_dispatching())
            shown = {"status": _FAILED, **({"queue": queue_name} if queue_name else {})}
            target = "&".join(f"{k}={v}" for k, v in shown.items())
            _audit_retry("job_filter", target, {"filter": shown, "tenant": None}, outcome)
    except AppError as exc:
        raise click.ClickException(str(exc)) from exc
    _report(outcome)


@click.command("forget")
@click.argument("ids", metavar="ID...", nargs=-1, required=True)
def queue_forget(ids: tuple[str, ...]) -> None:
    """Delete failed jobs by ID, for good (rows and attempts)."""
    wanted = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    found = dict(
        sql()
        .execute(
            select(JobExecution.id, JobExecution.tenant_id).where(
                JobExecution.id.in_(wanted), JobExecution.status == _FAILED
            )
        )
        .all()
    )
    forgotten = dead_letter.delete_executions(sql(), list(found), only_status=_FAILED) if found else 0
    sql().commit()
    for job_id, tenant_id in found.items():
        record_cli_action("job.forget", "job", job_id, tenant_id=tenant_id, before={"status": _FAILED})
    click.echo(f"Forgot {forgotten} failed job{'' if forgotten == 1 else 's'}.")
    missing = [i for i in wanted if i not in found]
    if missing:
        raise click.ClickException(f"not failed jobs (unknown ids, or not failed): {', '.join(missing)}")


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    match = _DURATION.match(value.strip())
    if match is None or int(match.group(1)) == 0:
        raise click.BadParameter(f"{value!r}: write it like 30m, 12h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def _failed_queues() -> Sequence[str]:
    """Queues holding failed jobs now (through the (status, updated_at) index)."""
    return sorted(sql().scalars(select(JobExecution.queue).where(JobExecution.status == _FAILED).distinct()))


@click.command("flush")
@click.option("--queue", "queue_name", default=None, help="Only this queue's failed jobs.")
@click.option("--older-than", callback=_duration, help="Only jobs that failed longer ago than this: 30m, 12h, 7d.")
def queue_flush(queue_name: str | None, older_than: timedelta | None) -> None:
    """Delete failed jobs for good: every queue's or one's.

    Rows and attempts go; --older-than keeps the recent ones.
    """
    cutoff = datetime.now(UTC) - older_than if older_than is not None else None
    names = [queue_name] if queue_name is not None else _failed_queues()
    total = 0
    for name in names:
        try:
            cleared = dead_letter.clear_queue(sql(), None, name, cutoff)
        except AppError as exc:
            raise click.ClickException(str(exc)) from exc
        if cleared or queue_name is not None:
            record_cli_action(
                "queue.clear_failed",
                "queue",
                name,
                before={"older_than": cutoff and cutoff.isoformat()},
                after={"cleared": cleared},
            )
        if cleared:
            click.echo(f"{name}: {cleared}")
        total += cleared
    age = f" that failed before {_when(cutoff)} UTC" if cutoff is not None else ""
    click.echo(f"Flushed {total} failed job{'' if total == 1 else 's'}{age}.")
