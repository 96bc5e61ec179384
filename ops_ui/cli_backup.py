"""`flask celeriac export --to FILE` and `flask celeriac import FILE` (docs/operations.md, "Backup and restore").

Exit status: 0 done; 3 the command could not run (a bad argument or file, a backend down),
with one readable line, as API.md's command-line additions ask.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, NoReturn

import click
import redis
from sqlalchemy.exc import SQLAlchemyError

from app.backends.current import backends
from app.broker import celery_app
from app.errors import AppError
from app.recording.broker_view import Broker
from app.redis_client import get_redis
from app.schedules.reconcile import reconcile
from app.services.backup_export import export
from app.services.backup_import import check_file, import_file
from app.services.backup_requeue import requeue_pending as requeue_jobs
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

#: Exit status of a command that could not run.
CANNOT_RUN = 3


def _fail(message: str) -> NoReturn:
    sql().rollback()
    click.echo(f"Error: {message}", err=True)
    sys.exit(CANNOT_RUN)


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--since must be a date or time like 2026-12-01 or 2026-12-01T08:00:00+00:00, got {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _redis() -> redis.Redis:
    return get_redis(app_settings().redis_url)


@click.command("export")
@click.option("--to", "path", required=True, type=click.Path(dir_okay=False, writable=True), help="File to write.")
@click.option("--since", default=None, help="Only executions and batches created from this date or time (UTC).")
@click.option("--tenant", default=None, help="Only this tenant's schedules, executions and batches.")
def export_command(path: str, since: str | None, tenant: str | None) -> None:
    """Write definitions, schedules, queue settings, batches and executions as JSON lines."""
    moment = _since(since)
    try:
        with open(path, "w", encoding="utf-8") as out:
            report = export(sql(), out, since=moment, tenant=tenant, redis_client=_redis())
    except (OSError, SQLAlchemyError, redis.RedisError) as exc:
        _fail(f"export failed: {exc}")
    counts = dict(report.counts)
    record_cli_action("backup.export", after={"file": path, "since": since, "tenant": tenant, "counts": counts})
    click.echo(f"Exported to {path}: " + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())))


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--requeue-pending", is_flag=True, help="Publish again imported pending jobs no broker queue holds.")
def import_command(path: str, requeue_pending: bool) -> None:
    """Restore a backup; ids already present are skipped and counted, never overwritten."""
    try:
        with open(path, encoding="utf-8") as lines:
            check_file(lines)
    except AppError as exc:
        _fail(f"{path}: {exc}; nothing was imported")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
    try:
        with open(path, encoding="utf-8") as lines:
            report = import_file(sql(), lines, redis_client=_redis())
        if report.imported["schedule"]:
            used = backends()
            reconcile(sql(), used.schedules, used.clock.now())  # their RedBeat entries
        requeued = None
        if requeue_pending:
            with celery_app.connection_for_write() as connection:
                requeued = requeue_jobs(sql(), report.pending_ids, Broker(connection.default_channel))
    except (AppError, OSError, UnicodeDecodeError, SQLAlchemyError, redis.RedisError) as exc:
        # The batch under way was rolled back; the ones before it stay (a re-run skips them).
        _fail(f"import of {path} stopped: {exc}")
    after: dict[str, Any] = {"file": path, "imported": dict(report.imported), "skipped": dict(report.skipped)}
    for line in report.lines():
        click.echo(line)
    if requeued is not None:
        after["requeued"] = requeued.requeued
        click.echo(
            f"pending jobs: re-queued {requeued.requeued}, already in a queue {requeued.already_queued}, "
            f"left as they are {requeued.left}"
        )
    record_cli_action("backup.import", after=after)
