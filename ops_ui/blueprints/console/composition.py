"""Batches (progress, counts, callbacks) and chains (steps)."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/batches")
@console_role("viewer")
def batches() -> Any:
    return render_template("console/placeholder.html", title="Batches")


@bp.get("/chains")
@console_role("viewer")
def chains() -> Any:
    return render_template("console/placeholder.html", title="Chains")
