"""Schedules: list, cron builder with live description and next runs, pause / resume / run now, history."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/schedules")
@console_role("viewer")
def schedules() -> Any:
    return render_template("console/placeholder.html", title="Schedules")
