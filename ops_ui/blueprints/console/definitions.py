"""Job definitions: defaults per job class, activate / deactivate."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/definitions")
@console_role("viewer")
def definitions() -> Any:
    return render_template("console/placeholder.html", title="Job definitions")
