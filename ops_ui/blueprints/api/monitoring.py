"""Worker registry, stuck and slow jobs (M2, M3): GET only, every role may read.

Workers are shared infrastructure: every tenant's tokens see the same list (hostnames,
queues, counters; no job data). Stuck and slow jobs are jobs: a token sees its tenant's.
"""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from app.monitoring.slow import find_slow
from app.monitoring.stuck import find_stuck
from app.monitoring.workers import list_workers
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.monitoring import MonitoringQuery, SlowJobs, StuckJobs, Workers
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_query
from ops_ui.extensions import sql
from ops_ui.settings import app_settings


def _redis() -> Any:
    return get_redis(app_settings().redis_url)


def _limit() -> int:
    return read_query(MonitoringQuery).limit


@bp.get("/admin/queue/workers")
@api_auth("viewer")
@operation(
    "Workers from their heartbeats: online ones, and offline ones for CELERIAC_WORKER_FORGET_AFTER_S "
    "(every tenant's tokens see them: workers are shared)",
    answers={200: (Workers, "workers by hostname")},
)
def workers() -> Any:
    settings = app_settings()
    found = list_workers(_redis(), settings.monitoring)
    return jsonify(workers=[w.as_dict() for w in found])


@bp.get("/monitoring/stuck")
@api_auth("viewer")
@operation(
    "The tenant's processing jobs past timeout + grace or on an offline worker, longest running first",
    query=MonitoringQuery,
    answers={200: (StuckJobs, "items")},
)
def stuck() -> Any:
    settings = app_settings()
    found = find_stuck(sql(), _redis(), settings, g.principal.tenant_id, limit=_limit())
    return jsonify(items=[s.as_dict() for s in found])


@bp.get("/monitoring/slow")
@api_auth("viewer")
@operation(
    "The tenant's running, then recently finished, jobs past a multiple of their class's p95 or near their timeout",
    query=MonitoringQuery,
    answers={200: (SlowJobs, "items")},
)
def slow() -> Any:
    settings = app_settings()
    found = find_slow(sql(), _redis(), settings, g.principal.tenant_id, limit=_limit())
    return jsonify(items=[s.as_dict() for s in found])
