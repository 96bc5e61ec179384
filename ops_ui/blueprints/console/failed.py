"""Failed jobs and the dead letter: fingerprint groups, retry a group or a queue, purge."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/failed")
@console_role("viewer")
def failed() -> Any:
    return render_template("console/placeholder.html", title="Failed jobs")
