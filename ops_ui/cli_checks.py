"""What a `flask` command checks before it runs, and how one that cannot run ends.

A command that cannot run (bad argument, backend unreachable, no database) prints one
readable line and exits 3 (API.md "Additions (2026-12)"). Before a command of Celeriac's
groups runs, the database must exist and be migrated: otherwise the user is told to run
`flask db upgrade` and which database was used, instead of `no such table: tenants`, and a
default SQLite file is never created behind their back.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click
from sqlalchemy import inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from app.config import Settings, read_environment
from app.db import db
from app.task_modules import TaskModuleMissing, check_task_modules
from ops_ui.settings import app_settings

#: Exit code of a command that cannot run.
CANNOT_RUN = 3
#: Alembic's table: present once `flask db upgrade` ran.
MIGRATIONS_TABLE = "alembic_version"
UPGRADE = "run `.venv/bin/flask db upgrade` (make run does), or set DATABASE_URL to the database your stack uses"


class CannotRun(click.ClickException):
    """One readable line on stderr ("Error: ..."), exit 3."""

    exit_code = CANNOT_RUN


def first_line(exc: BaseException) -> str:
    """An exception as one line (SQLAlchemy's carry the SQL and a link on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


def shown_url(url: str) -> str:
    """The database URL with its password masked."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unreadable DATABASE_URL)"


def missing_sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names when it does not exist yet (connecting would create it)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    return None if path.exists() else path


def _which(url: str) -> str:
    unset = "DATABASE_URL" not in read_environment()
    return f"{shown_url(url)}" + (" (the default: DATABASE_URL is not set)" if unset else "")


def require_database(settings: Settings) -> None:
    """Raises: CannotRun when the database is missing, unreachable or not migrated."""
    url = settings.database_url
    missing = missing_sqlite_file(url)
    if missing is not None:  # connecting would create an empty one
        raise CannotRun(f"there is no database yet at {_which(url)}: {UPGRADE}")
    try:
        migrated = inspect(db.engine).has_table(MIGRATIONS_TABLE)
    except SQLAlchemyError as exc:
        raise CannotRun(f"cannot reach the database {_which(url)}: {first_line(exc)}") from exc
    if not migrated:
        raise CannotRun(f"the database {_which(url)} has no tables yet: {UPGRADE}")


def check_database_first(command: click.Command) -> None:
    """`command` (every command of a group) checks the database before it runs.

    The check runs after the command's options are read, so `--help` needs no database.
    Each callback is wrapped once, however many apps register the command.
    """
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            check_database_first(sub)
        return
    earlier = command.callback
    if earlier is None or getattr(earlier, "checks_database", False):
        return

    @functools.wraps(earlier)
    def callback(*args: Any, **kwargs: Any) -> Any:
        require_database(app_settings())
        return earlier(*args, **kwargs)

    callback.checks_database = True  # type: ignore[attr-defined]
    command.callback = callback


def require_task_modules(names: tuple[str, ...]) -> None:
    """Raises: CannotRun naming a CELERIAC_TASK_MODULES entry that cannot be imported."""
    try:
        check_task_modules(names)
    except TaskModuleMissing as exc:
        raise CannotRun(str(exc)) from None
