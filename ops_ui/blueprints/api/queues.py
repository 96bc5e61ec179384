"""Queue rate limits (J10): GET / PUT / DELETE /api/queues/<name>/rate-limit (admin).

A queue's limit is global (every worker, every tenant), so changing it needs the admin
role; reading it needs viewer. Changes are audited.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify

from app.errors import ValidationError
from app.ratelimit import queue_limits
from app.redis_client import get_redis
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.trail import record_action


def _redis() -> Any:
    return get_redis(current_app.extensions["celeriac_settings"].redis_url)


def _current(name: str) -> dict[str, Any]:
    found = queue_limits.get_limit(_redis(), current_app.extensions["celeriac_settings"], name)
    return found.as_dict() if found is not None else queue_limits.empty(name)


@bp.get("/queues/<name>/rate-limit")
@api_auth("viewer")
def get_rate_limit(name: str) -> Any:
    return jsonify(_current(name))


@bp.put("/queues/<name>/rate-limit")
@api_auth("admin")
def put_rate_limit(name: str) -> Any:
    body = json_body()
    unknown = set(body) - {"limit", "per"}
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}; send limit and per")
    before = _current(name)
    limit = queue_limits.set_limit(_redis(), name, body.get("limit"), body.get("per"))
    record_action("queue.rate_limit.set", "queue", name, before=before, after=limit.as_dict())
    return jsonify(limit.as_dict())


@bp.delete("/queues/<name>/rate-limit")
@api_auth("admin")
def delete_rate_limit(name: str) -> Response:
    before = _current(name)
    if queue_limits.clear_limit(_redis(), name):
        record_action("queue.rate_limit.delete", "queue", name, before=before, after=_current(name))
    return Response(status=204)
