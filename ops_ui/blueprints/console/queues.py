"""Queues: depth, latency, throughput, pause / resume, rate limits."""

from __future__ import annotations

from typing import Any

from flask import render_template

from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp


@bp.get("/queues")
@console_role("viewer")
def queues() -> Any:
    return render_template("console/placeholder.html", title="Queues")
