"""Worker registry, stuck and slow jobs (M2, M3): GET only, every role may read.

Workers are shared infrastructure: every tenant's tokens see the same list (hostnames,
queues, counters; no job data). Stuck and slow jobs are jobs: a token sees its tenant's.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request

from app.errors import ValidationError
from app.monitoring.slow import find_slow
from app.monitoring.stuck import MAX_PAGE, find_stuck
from app.monitoring.workers import list_workers
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.extensions import sql

#: Page size when `limit` is not given.
DEFAULT_PAGE = 50


def _redis() -> Any:
    return get_redis(current_app.extensions["celeriac_settings"].redis_url)


def _limit() -> int:
    raw = request.args.get("limit", str(DEFAULT_PAGE))
    try:
        limit = int(raw)
    except ValueError as exc:
        raise ValidationError(f"limit must be an integer, got {raw!r}") from exc
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}, got {limit}")
    return limit


@bp.get("/admin/queue/workers")
@api_auth("viewer")
def workers() -> Any:
    settings = current_app.extensions["celeriac_settings"]
    found = list_workers(_redis(), settings.monitoring)
    return jsonify(workers=[w.as_dict() for w in found])


@bp.get("/monitoring/stuck")
@api_auth("viewer")
def stuck() -> Any:
    settings = current_app.extensions["celeriac_settings"]
    found = find_stuck(sql(), _redis(), settings, g.principal.tenant_id, limit=_limit())
    return jsonify(items=[s.as_dict() for s in found])


@bp.get("/monitoring/slow")
@api_auth("viewer")
def slow() -> Any:
    settings = current_app.extensions["celeriac_settings"]
    found = find_slow(sql(), _redis(), settings, g.principal.tenant_id, limit=_limit())
    return jsonify(items=[s.as_dict() for s in found])
