"""Dashboard: queues, workers, recent and failed jobs, throughput and health at a glance."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/")
@console_role("viewer")
def dashboard() -> Any:
    return render_template("console/placeholder.html", title="Dashboard")
