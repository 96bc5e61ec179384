"""Performance charts per job class and per queue."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/performance")
@console_role("viewer")
def performance() -> Any:
    return render_template("console/placeholder.html", title="Performance")
