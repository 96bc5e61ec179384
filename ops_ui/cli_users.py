"""`flask users list|deactivate|set-password` and `flask tokens list|revoke` (API.md
"Additions (2026-12)"): account housekeeping for operators at a shell, audited as "cli".

Listings never show a secret: a token appears by its id and the first characters it starts
with (its prefix), never the token or its hash. A command that cannot run (unknown e-mail
or id, a bad password) prints one line and exits 3.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime

import click

from app.errors import AppError
from app.services import auth, user_admin
from ops_ui.cli_checks import CannotRun
from ops_ui.extensions import sql
from ops_ui.trail import record_cli_action


def _when(moment: datetime | None, never: str = "never") -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else never


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Aligned columns under a header line: one line per row."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    return password


tenant_option = click.option("--tenant", default=None, help="Only this tenant's (default: every tenant's).")


@click.command("list")
@tenant_option
def users_list(tenant: str | None) -> None:
    """Console users: e-mail, role, tenant, active or not, last login."""
    found = auth.list_users(sql(), tenant)
    if not found:
        click.echo("No users. Create one: flask users create --email E --role admin --superadmin")
        return
    rows = [
        (
            user.email,
            user.role,
            "(all: superadmin)" if user.is_superadmin and user.tenant_id is None else user.tenant_id or "-",
            "active" if user.is_active else "deactivated",
            _when(user.last_login_at),
            _when(user.created_at),
            user.id,
        )
        for user in found
    ]
    _table(("EMAIL", "ROLE", "TENANT", "STATUS", "LAST LOGIN", "CREATED", "ID"), rows)


@click.command("deactivate")
@click.option("--email", required=True, help="The user's e-mail.")
def users_deactivate(email: str) -> None:
    """The user can no longer log in; their open console sessions end at once."""
    try:
        user = user_admin.user_by_email(sql(), email)
        user_admin.deactivate(sql(), user)
    except AppError as exc:
        sql().rollback()
        raise CannotRun(str(exc)) from exc
    record_cli_action(
        "user.deactivate", "user", user.id, tenant_id=user.tenant_id, before={"active": True}, after={"active": False}
    )
    click.echo(f"{user.email} is deactivated: they cannot log in, and their open sessions have ended.")


@click.command("set-password")
@click.option("--email", required=True, help="The user's e-mail.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_set_password(email: str, password_stdin: bool) -> None:
    """Set a new password (lost ones cannot be read back); the user's open sessions end."""
    try:
        user = user_admin.user_by_email(sql(), email)
    except AppError as exc:
        raise CannotRun(str(exc)) from exc
    password = _read_password(password_stdin)
    try:
        user_admin.set_password(sql(), user, password)
    except AppError as exc:
        sql().rollback()
        raise CannotRun(str(exc)) from exc
    record_cli_action("user.password", "user", user.id, tenant_id=user.tenant_id)
    click.echo(f"Password of {user.email} changed; their open sessions have ended.")


@click.command("list")
@tenant_option
def tokens_list(tenant: str | None) -> None:
    """API tokens, live ones first: id, tenant, role, kind (api or metrics), name, prefix, dates. Never the token."""
    found = auth.list_tokens(sql(), tenant)
    if not found:
        click.echo("No tokens. Create one: flask tokens create --tenant T --role viewer")
        return
    rows = [
        (
            token.id,
            token.tenant_id,
            token.role,
            token.kind,
            token.name or "-",
            f"{token.prefix}...",
            _when(token.created_at),
            _when(token.last_used_at),
            _when(token.revoked_at, never="no"),
        )
        for token in found
    ]
    _table(("ID", "TENANT", "ROLE", "KIND", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"), rows)


@click.command("revoke")
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id: str) -> None:
    """Revoke the token with this id (see `flask tokens list`): its next request gets 401."""
    try:
        token = auth.get_token(sql(), token_id, None)
        auth.revoke_token(sql(), token)
    except AppError as exc:
        sql().rollback()
        raise CannotRun(str(exc)) from exc
    record_cli_action(
        "token.revoke", "token", token.id, tenant_id=token.tenant_id, before={"revoked": False}, after={"revoked": True}
    )
    click.echo(f"Revoked token {token.prefix}... ({token.name or 'no name'}) of tenant {token.tenant_id}.")
