"""Monitoring section of API.md: per-class performance (M6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import g, jsonify, request

from app.errors import ValidationError
from app.monitoring.performance import performance
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.extensions import sql

#: Longest window the performance view sums, in hours.
MAX_HOURS = 24 * 7


@bp.get("/monitoring/performance")
@api_auth("viewer")
def class_performance() -> Any:
    raw = request.args.get("hours", "1")
    try:
        hours = float(raw)
    except ValueError as exc:
        raise ValidationError(f"hours must be a number, got {raw!r}") from exc
    if not 0 < hours <= MAX_HOURS:
        raise ValidationError(f"hours must be more than 0 and at most {MAX_HOURS}")
    now = datetime.now(UTC)
    since = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    classes = performance(sql().connection(), g.principal.tenant_id, since, now)
    recommendations = [advice for item in classes for advice in item.recommendations]
    return jsonify(window_hours=hours, classes=[c.as_dict() for c in classes], recommendations=recommendations)
