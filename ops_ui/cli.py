"""Flask CLI commands of API.md: `flask tokens create`, `flask users create`, and set-up."""

from __future__ import annotations

import os
import secrets
import sys

import click
from flask import Flask

from app.errors import ValidationError
from app.jobs.celery_backend import sync_registry_definitions
from app.models.api_token import API_TOKEN, METRICS_TOKEN
from app.recorder import reconcile_once
from app.redis_client import get_redis
from app.services.auth import ROLES, create_token, create_user, has_users
from app.services.retention import purge_history
from app.services.user_admin import first_admin_email
from ops_ui.cli_backup import export_command, import_command
from ops_ui.cli_bulk import jobs
from ops_ui.cli_checks import check_database_first
from ops_ui.cli_queue import queue, queues
from ops_ui.cli_schedules import schedules
from ops_ui.cli_top import top
from ops_ui.cli_users import tokens_list, tokens_revoke, users_deactivate, users_list, users_set_password
from ops_ui.cli_workers import workers
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_cli_action

tokens = click.Group("tokens", help="Manage API tokens.")
users = click.Group("users", help="Manage console users.")
celeriac = click.Group("celeriac", help="Set-up and maintenance.")


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(2)


@tokens.command("create")
@click.option("--tenant", required=True, help="Tenant id (created if needed), e.g. acme.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="viewer, operator or admin.")
@click.option("--name", default="", help="A label to recognise the token by.")
@click.option(
    "--metrics", is_flag=True, help="A Prometheus scrape token: reads /metrics for every tenant and nothing else."
)
def tokens_create(tenant: str, role: str, name: str, metrics: bool) -> None:
    """Create an API token and print it alone on the last line."""
    kind = METRICS_TOKEN if metrics else API_TOKEN
    try:
        new = create_token(sql(), tenant, role, name=name, kind=kind)
    except ValidationError as exc:
        _fail(str(exc))
        return
    after = {"role": role, "name": name, "kind": kind}
    record_cli_action("token.create", "api_token", new.token.id, tenant_id=tenant, after=after)
    if metrics:
        click.echo(f"Created metrics token {new.token.prefix}... (reads /metrics for every tenant). It is shown once:")
    else:
        click.echo(f"Created {role} token {new.token.prefix}... for tenant {tenant}. It is shown once:")
    click.echo(new.raw)


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--tenant", default=None, help="Tenant id (default: CELERIAC_DEFAULT_TENANT); --superadmin: all.")
@click.option("--superadmin", is_flag=True, help="Sees and manages every tenant.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, role: str, tenant: str | None, superadmin: bool, password_stdin: bool) -> None:
    """Create a console user."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if tenant is None and not superadmin:
        tenant = app_settings().default_tenant
    try:
        user = create_user(sql(), email, password, role, tenant, superadmin=superadmin)
    except ValidationError as exc:
        _fail(str(exc))
        return
    record_cli_action("user.create", "user", user.id, tenant_id=tenant, after={"email": user.email, "role": role})
    click.echo(f"Created {role} user {user.email}" + (f" in tenant {tenant}" if tenant else " (all tenants)"))


@celeriac.command("bootstrap")
@click.option("--email", default="admin@localhost", show_default=True)
def bootstrap(email: str) -> None:
    """First run: sync job definitions and create a superadmin with a generated password."""

    added = sync_registry_definitions()
    if added:
        click.echo(f"Job definitions added: {added}")
    if has_users(sql()):
        admin = first_admin_email(sql())  # for make run's banner; the password was shown once
        if admin is not None:
            click.echo(f"Admin: {admin}")
        return
    password = secrets.token_urlsafe(12)
    create_user(sql(), email, password, "admin", None, superadmin=True)
    record_cli_action("user.bootstrap", "user", after={"email": email})
    click.echo(f"Admin: {email}")
    click.echo(f"Password: {password}")


@celeriac.command("sync-definitions")
def sync_definitions_command() -> None:
    """Add definition rows for tasks registered in code."""

    click.echo(f"Job definitions added: {sync_registry_definitions()}")


@celeriac.command("purge-history")
def purge_history_command() -> None:
    """Delete executions past CELERIAC_RETENTION_DAYS (failed: CELERIAC_FAILED_RETENTION_DAYS);
    roll job stats up to hours and days (see docs/failures.md, "Retention")."""

    report = purge_history(sql(), app_settings())
    record_cli_action("history.purge", after=report.as_dict())
    click.echo(f"Purged {report.executions} executions ({report.failed} failed) and {report.groups} failure groups")
    stats = report.stats
    click.echo(
        f"Job stats: {stats.minutes} minute rows rolled into hours, {stats.hours} hour rows into days, "
        f"{stats.days_purged} day rows deleted"
    )


@celeriac.command("reconcile")
def reconcile_command() -> None:
    """Run the reconciler now: orphaned messages back to their queue, lost jobs published
    again, outcomes recovered from the result backend (the recorder runs it every
    CELERIAC_RECONCILE_INTERVAL_S anyway; see docs/reliability.md)."""

    settings = app_settings()
    report = reconcile_once(settings, get_redis(settings.redis_url), name=f"cli-{os.getpid()}")
    if report is None:
        raise click.ClickException("a recorder is reconciling right now (or the recorder has events to write first)")
    record_cli_action("jobs.reconcile", after=report.as_dict())
    for name, value in report.as_dict().items():
        click.echo(f"{name}: {value}")


#: The name this command had before the reconciler replaced the reaper.
celeriac.add_command(reconcile_command, name="reap-stuck")
celeriac.add_command(export_command)  # backup and restore: ops_ui/cli_backup.py
celeriac.add_command(import_command)


for command in (tokens_list, tokens_revoke):  # listing and revoking: ops_ui/cli_users.py
    tokens.add_command(command)
for command in (users_list, users_deactivate, users_set_password):
    users.add_command(command)


queue.add_command(top)  # the live view: ops_ui/cli_top.py


def register_cli(app: Flask) -> None:

    for group in (tokens, users, celeriac, schedules, queue, queues, workers, jobs):
        check_database_first(group)  # "run flask db upgrade", not "no such table" (cli_checks.py)
        app.cli.add_command(group)
