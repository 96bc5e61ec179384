"""The audit log: who did what, to which target, from where, with what outcome."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/audit")
@console_role("viewer")
def audit_log() -> Any:
    return render_template("console/placeholder.html", title="Audit log")
