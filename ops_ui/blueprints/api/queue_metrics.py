"""`GET /api/admin/queue/stats`, `/metrics` (JSON) and `/health` (M1, M4, M5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask import g, jsonify

from app import redis_keys
from app.config import HealthThresholds
from app.kernel import aggregates
from app.models import JobStatsMinute
from app.monitoring import health, metrics
from app.monitoring.queue_stats import stats_of_queues
from app.monitoring.stuck import find_stuck
from app.monitoring.workers import list_workers
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.monitoring import AllQueueStats, Metrics, QueueHealth
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.metrics import snapshot
from ops_ui.extensions import sql
from ops_ui.settings import app_settings


def _all_stats(tenant: str | None, redis_client: Any) -> list[dict[str, Any]]:
    """Every queue the tenant used; one grouped query per figure, not one per queue."""
    return [s.as_dict() for s in stats_of_queues(sql(), metrics.known_queues(sql(), tenant), tenant, redis_client)]


def _recent(tenant: str | None, limits: HealthThresholds) -> dict[str, aggregates.WindowStats]:
    """Each queue's aggregates over the health window (waits and retries)."""
    since = (datetime.now(UTC) - timedelta(seconds=limits.recent_window_s)).replace(second=0, microsecond=0)
    scope = [] if tenant is None else [JobStatsMinute.tenant_id == tenant]
    return aggregates.windows(sql().connection(), since, "queue", *scope)


@bp.get("/admin/queue/stats")
@api_auth("viewer")
@operation("Stats of every queue the tenant used", answers={200: (AllQueueStats, "one entry per queue")})
def all_queue_stats() -> Any:
    redis_client = get_redis(app_settings().redis_url)
    return jsonify(queues=_all_stats(g.principal.tenant_id, redis_client))


@bp.get("/admin/queue/health")
@api_auth("viewer")
@operation("healthy / warning / critical, with issues and recommendations", answers={200: (QueueHealth, "the verdict")})
def queue_health() -> Any:
    """healthy / warning / critical with issues and recommendations (M4)."""
    settings = app_settings()
    redis_client = get_redis(settings.redis_url)
    tenant = g.principal.tenant_id
    limits = settings.health
    report = health.assess(
        _all_stats(tenant, redis_client),
        list_workers(redis_client, settings.monitoring),
        redis_client.hgetall(redis_keys.RECORDER_STATS) or {},
        bool(redis_client.exists(redis_keys.RECORDER_HEARTBEAT)),
        len(find_stuck(sql(), redis_client, settings, tenant)),
        limits,
        _recent(tenant, limits),
    )
    return jsonify(report.as_dict())


@bp.get("/admin/queue/metrics")
@api_auth("viewer")
@operation("The figures of /metrics as JSON counters and gauges", answers={200: (Metrics, "counters and gauges")})
def queue_metrics() -> Any:
    return jsonify(metrics.as_json(snapshot()))
