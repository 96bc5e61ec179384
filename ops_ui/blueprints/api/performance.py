"""Monitoring section of API.md: per-class performance (M6)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import g, jsonify

from app.monitoring.performance import performance, queue_throughput
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.monitoring import Performance, PerformanceQuery
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_query
from ops_ui.extensions import sql
from ops_ui.settings import app_settings


@bp.get("/monitoring/performance")
@api_auth("viewer")
@operation(
    "Per job class: completed, failed, success rate, throughput, avg / p95 runtime, memory, recommendations",
    query=PerformanceQuery,
    answers={200: (Performance, "classes, queues and recommendations")},
)
def class_performance() -> Any:
    hours = read_query(PerformanceQuery).hours
    now = datetime.now(UTC)
    since = (now - timedelta(hours=hours)).replace(second=0, microsecond=0)
    conn = sql().connection()
    # One retry-rate threshold for health and performance (CELERIAC_HEALTH_RETRY_RATE_WARNING).
    retry_limit = app_settings().health.retry_rate_warning
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
