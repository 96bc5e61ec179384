"""Workers: status from heartbeats, pool grow / shrink, consumers, graceful shutdown."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/workers")
@console_role("viewer")
def workers() -> Any:
    return render_template("console/placeholder.html", title="Workers")
