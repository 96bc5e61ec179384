"""Flask CLI commands of API.md: `flask tokens create`, `flask users create`, and set-up."""

from __future__ import annotations

import os
import secrets
import sys

import click
from flask import Flask, current_app

from app.errors import ValidationError
from app.services import audit
from app.services.auth import ROLES, create_token, create_user, has_users
from ops_ui.extensions import sql

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
def tokens_create(tenant: str, role: str, name: str) -> None:
    """Create an API token and print it alone on the last line."""
    try:
        new = create_token(sql(), tenant, role, name=name)
    except ValidationError as exc:
        _fail(str(exc))
        return
    audit.record(
        sql(),
        actor="cli",
        action="token.create",
        tenant_id=tenant,
        target_type="api_token",
        target_id=new.token.id,
        after={"role": role, "name": name},
    )
    sql().commit()
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
        tenant = current_app.extensions["celeriac_settings"].default_tenant
    try:
        user = create_user(sql(), email, password, role, tenant, superadmin=superadmin)
    except ValidationError as exc:
        _fail(str(exc))
        return
    audit.record(
        sql(),
        actor="cli",
        action="user.create",
        tenant_id=tenant,
        target_type="user",
        target_id=user.id,
        after={"email": user.email, "role": role},
    )
    sql().commit()
    click.echo(f"Created {role} user {user.email}" + (f" in tenant {tenant}" if tenant else " (all tenants)"))


@celeriac.command("bootstrap")
@click.option("--email", default="admin@localhost", show_default=True)
def bootstrap(email: str) -> None:
    """First run: sync job definitions and create a superadmin with a generated password."""
    from app.jobs.celery_backend import sync_registry_definitions

    added = sync_registry_definitions()
    if added:
        click.echo(f"Job definitions added: {added}")
    if has_users(sql()):
        return
    password = secrets.token_urlsafe(12)
    create_user(sql(), email, password, "admin", None, superadmin=True)
    audit.record(
        sql(),
        actor="cli",
        action="user.bootstrap",
        tenant_id=None,
        target_type="user",
        after={"email": email},
    )
    sql().commit()
    click.echo(f"Admin: {email}")
    click.echo(f"Password: {password}")


@celeriac.command("sync-definitions")
def sync_definitions_command() -> None:
    """Add definition rows for tasks registered in code."""
    from app.jobs.celery_backend import sync_registry_definitions

    click.echo(f"Job definitions added: {sync_registry_definitions()}")


@celeriac.command("purge-history")
def purge_history_command() -> None:
    """Delete executions past CELERIAC_RETENTION_DAYS (failed: CELERIAC_FAILED_RETENTION_DAYS)."""
    from app.services.retention import purge_history

    report = purge_history(sql(), current_app.extensions["celeriac_settings"])
    audit.record(sql(), actor="cli", action="history.purge", tenant_id=None, after=report.as_dict())
    sql().commit()
    click.echo(f"Purged {report.executions} executions ({report.failed} failed) and {report.groups} failure groups")


@celeriac.command("reconcile")
def reconcile_command() -> None:
    """Run the reconciler now: orphaned messages back to their queue, lost jobs published
    again, outcomes recovered from the result backend (the recorder runs it every
    CELERIAC_RECONCILE_INTERVAL_S anyway; see docs/reliability.md)."""
    from app.recorder import reconcile_once
    from app.redis_client import get_redis

    settings = current_app.extensions["celeriac_settings"]
    report = reconcile_once(settings, get_redis(settings.redis_url), name=f"cli-{os.getpid()}")
    if report is None:
        raise click.ClickException("a recorder is reconciling right now (or the recorder has events to write first)")
    audit.record(sql(), actor="cli", action="jobs.reconcile", tenant_id=None, after=report.as_dict())
    sql().commit()
    for name, value in report.as_dict().items():
        click.echo(f"{name}: {value}")


#: The name this command had before the reconciler replaced the reaper.
celeriac.add_command(reconcile_command, name="reap-stuck")


def register_cli(app: Flask) -> None:
    from ops_ui.cli_schedules import schedules
    from ops_ui.cli_workers import queues, workers

    for group in (tokens, users, celeriac, schedules, queues, workers):
        app.cli.add_command(group)
