"""API tokens (create, revoke; the raw token shown once) and console users (admins only)."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/tokens")
@console_role("admin")
def tokens() -> Any:
    return render_template("console/placeholder.html", title="API tokens")


@bp.get("/users")
@console_role("admin")
def users() -> Any:
    return render_template("console/placeholder.html", title="Users")
