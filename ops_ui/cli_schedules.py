"""`flask schedules list|add|pause|resume|remove|run|preview|run-due|reconcile` (S1-S3).

Ids are global here (the CLI acts for every tenant); `--tenant` narrows `list`.
Errors print one readable line and exit with status 2, as `flask tokens` does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from app.backends.current import backends
from app.errors import AppError
from app.schedules.firing import POLICIES
from app.schedules.reconcile import reconcile
from app.schedules.service import JobSchedulerService, default_service
from app.schedules.views import preview, schedule_view
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

schedules = click.Group("schedules", help="Manage cron schedules (fired by celery beat with RedBeat).")


@contextmanager
def _readable_errors() -> Iterator[None]:
    try:
        yield
    except AppError as exc:
        sql().rollback()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)


def _service() -> JobSchedulerService:
    return default_service(sql())


def _audit(action: str, schedule_id: str, tenant_id: str | None, **fields: Any) -> None:
    record_cli_action(action, "schedule", schedule_id, tenant_id=tenant_id, **fields)


def _when(value: str | None) -> str:
    if value is None:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@schedules.command("list")
@click.option("--tenant", default=None, help="Only this tenant's schedules.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(tenant: str | None, as_json: bool) -> None:
    """List schedules with their next and last run."""
    views = [schedule_view(row) for row in _service().get_scheduled_jobs(tenant)]
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    if not views:
        click.echo("No schedules.")
        return
    for view in views:
        state = "active" if view["active"] else "paused"
        click.echo(
            f"{view['id']}  {view['tenant_id']}  {view['job_class']}  '{view['cron']}' {view['timezone']}  "
            f"{state}  next {_when(view['next_run_at'])}  last {_when(view['last_run_at'])}  "
            f"({view['description']})" + (f"  options {json.dumps(view['options'])}" if view["options"] else "")
        )


@schedules.command("add")
@click.option("--job-class", required=True, help="A registered job, e.g. demo.echo.")
@click.option("--cron", required=True, help="e.g. '30 2 * * *' (quote it).")
@click.option("--timezone", default="UTC", show_default=True, help="IANA zone, e.g. Europe/Berlin.")
@click.option("--payload", default="{}", help="JSON object passed to the job.")
@click.option("--tenant", default=None, help="Tenant id (default: CELERIAC_DEFAULT_TENANT).")
@click.option("--name", default=None)
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--missed-fire-policy", type=click.Choice(POLICIES), default="skip", show_default=True)
@click.option("--queue", default=None, help="Queue every fire goes to (default: the job's).")
@click.option("--priority", type=int, default=None, help="0 (lowest) to 9 (highest).")
@click.option("--timeout", type=int, default=None, help="Seconds each run may take.")
@click.option("--max-attempts", type=int, default=None, help="Attempts per fire, 1 to 100.")
@click.option("--tag", "tags", multiple=True, help="A tag on every fired job (repeat for more).")
@click.option("--options", "more_options", default=None, help="Other dispatch options as a JSON object.")
def add_command(
    job_class: str,
    cron: str,
    timezone: str,
    payload: str,
    tenant: str | None,
    name: str | None,
    paused: bool,
    missed_fire_policy: str,
    queue: str | None,
    priority: int | None,
    timeout: int | None,
    max_attempts: int | None,
    tags: tuple[str, ...],
    more_options: str | None,
) -> None:
    """Create a schedule; prints its id alone on the last line.

    The options are those of a dispatch, checked the same way (docs/scheduling.md).
    """
    parsed = _json_object(payload, "--payload", '{"value": 1}')
    options = _json_object(more_options or "{}", "--options", '{"backoff": [10, 60]}')
    given = {"queue": queue, "priority": priority, "timeout": timeout, "max_attempts": max_attempts}
    options.update({key: value for key, value in given.items() if value is not None})
    if tags:
        options["tags"] = list(tags)
    tenant_id = tenant or app_settings().default_tenant
    with _readable_errors():
        row = _service().schedule_job(
            job_class,
            cron,
            timezone,
            parsed,
            tenant_id=tenant_id,
            name=name,
            active=not paused,
            missed_fire_policy=missed_fire_policy,
            options=options,
        )
    view = schedule_view(row)
    _audit("schedule.create", row.id, tenant_id, after=view)
    click.echo(f"Created schedule: {view['description']} ({view['timezone']}), next run {_when(view['next_run_at'])}")
    click.echo(row.id)


def _json_object(text: str, flag: str, example: str) -> dict[str, Any]:
    """A JSON object given on the command line, or exit 2 saying what was expected."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        click.echo(f"Error: {flag} must be a JSON object, e.g. '{example}'", err=True)
        sys.exit(2)
    return parsed


def _change(action: str, verb: str, call: Callable[[JobSchedulerService, str], Any]) -> Callable[[str], None]:
    def command(schedule_id: str) -> None:
        with _readable_errors():
            result = call(_service(), schedule_id)
        _audit(action, schedule_id, None)
        click.echo(f"Schedule {schedule_id} {verb}" + (f": job {result}" if isinstance(result, str) else "."))

    return command


for _name, _action, _verb, _call, _help in (
    ("pause", "schedule.pause", "paused", lambda s, i: s.pause_schedule(i, None), "Stop firing until resumed."),
    ("resume", "schedule.resume", "resumed", lambda s, i: s.resume_schedule(i, None), "Fire again from the next tick."),
    ("remove", "schedule.delete", "removed", lambda s, i: s.remove_schedule(i, None), "Delete a schedule."),
    ("run", "schedule.run", "dispatched", lambda s, i: s.run_now(i, None), "Dispatch its job now."),
):
    schedules.command(_name, help=_help)(click.argument("schedule_id")(_change(_action, _verb, _call)))


@schedules.command("preview")
@click.argument("cron")
@click.option("--timezone", default="UTC", show_default=True)
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 100))
def preview_command(cron: str, timezone: str, count: int) -> None:
    """Describe a cron expression and print its next run times."""
    with _readable_errors():
        shown = preview(cron, timezone, count)
    click.echo(shown.description)
    for run in shown.next_runs:
        click.echo(run.isoformat())


@schedules.command("run-due")
def run_due_command() -> None:
    """Fire every schedule whose next run is due (what beat does; safe beside it)."""
    results = _service().run_scheduled_jobs()
    fired = [r.job_id for r in results if r.job_id]
    click.echo(f"Due schedules: {len(results)}; jobs dispatched: {len(fired)}")


@schedules.command("reconcile")
def reconcile_command() -> None:
    """Repair drift between job_schedules and RedBeat's entries (beat does it at start-up)."""

    with _readable_errors():
        used = backends()
        report = reconcile(sql(), used.schedules, used.clock.now())
    click.echo(f"Reconciled: {report}")
