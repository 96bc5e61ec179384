"""Monitoring section of API.md: per-class performance (M6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import g, jsonify, request

from app.errors import ValidationError
from app.monitoring.health import Thresholds
from app.monitoring.performance import performance, queue_throughput
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
    conn = sql().connection()
    # One retry-rate threshold for health and performance (CELERIAC_HEALTH_RETRY_RATE_WARNING).
    retry_limit = Thresholds.from_environ().retry_rate_warning
    classes = performance(conn, g.principal.tenant_id, since, now, retry_limit)
    queues = queue_throughput(conn, g.principal.tenant_id, since, now)
    recommendations = [advice for item in classes for advice in item.recommendations] + [
        f"queue {q['queue']}: {q['pending']} jobs wait and none finished in the window - it is starving; "
        "check that a worker consumes it (GET /api/admin/queue/workers)"
        for q in queues
        if q["starving"]
    ]
    return jsonify(
        window_hours=hours, classes=[c.as_dict() for c in classes], queues=queues, recommendations=recommendations
    )
