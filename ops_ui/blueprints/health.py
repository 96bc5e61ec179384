"""GET /healthz: the only unauthenticated endpoint besides the login page."""

from __future__ import annotations

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    # Touches no backend: it says the web process is up, also while SQL or Redis is down
    # (those answer 503 on the routes that need them; /api/admin/queue/health checks them).
    return jsonify(status="ok")
