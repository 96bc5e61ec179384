"""`GET /api/admin/queue/stats` (every queue) and `GET /api/admin/queue/metrics` (M1, M5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, g, jsonify
from sqlalchemy import select

from app.errors import NotFound
from app.models import JobExecution, JobStatsMinute
from app.monitoring import metrics
from app.redis_client import get_redis
from app.services.queue_stats import queue_stats
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.metrics import snapshot
from ops_ui.extensions import sql


def _known_queues(tenant_id: str | None) -> list[str]:
    """Queues with live jobs or finished ones in the last day, plus the standard three."""
    since = datetime.now(UTC) - timedelta(days=1)
    recent = select(JobStatsMinute.queue).where(JobStatsMinute.minute >= since)
    live = select(JobExecution.queue).where(JobExecution.status.in_(["pending", "retrying", "processing"]))
    if tenant_id is not None:
        recent = recent.where(JobStatsMinute.tenant_id == tenant_id)
        live = live.where(JobExecution.tenant_id == tenant_id)
    names = set(sql().scalars(recent.distinct())) | set(sql().scalars(live.distinct()))
    return sorted(names | set(metrics.DEFAULT_QUEUES))


@bp.get("/admin/queue/stats")
@api_auth("viewer")
def all_queue_stats() -> Any:
    tenant = g.principal.tenant_id
    redis_client = get_redis(current_app.extensions["celeriac_settings"].redis_url)
    result = []
    for name in _known_queues(tenant):
        try:
            result.append(queue_stats(sql(), name, tenant, redis_client).as_dict())
        except NotFound:
            continue  # a standard queue this tenant never used
    return jsonify(queues=result)


@bp.get("/admin/queue/metrics")
@api_auth("viewer")
def queue_metrics() -> Any:
    return jsonify(metrics.as_json(snapshot()))
