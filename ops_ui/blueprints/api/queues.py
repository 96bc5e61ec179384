"""Queues: rate limits (J10) and pause / resume (W2).

GET / PUT / DELETE /api/queues/<name>/rate-limit; GET /api/queues; POST
/api/queues/<name>/pause and /resume. A queue's limit and pause are global (every worker,
every tenant), so changing them needs the admin role; reading needs viewer. Changes are
audited. A queue is known when it is a standard one, a worker consumes it, it has a limit
or a pause record, or any job used it: others answer 404 (an invalid name: 422).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, g, jsonify

from app.control import pauses
from app.control.queues import configured_queues
from app.monitoring.metrics import known_queues
from app.ratelimit import queue_limits
from app.redis_client import get_redis
from ops_ui import control_actions
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.control import (
    PauseState,
    QueueActionBody,
    QueuePath,
    Queues,
    RateLimit,
    RateLimitBody,
)
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_body, validated
from ops_ui.blueprints.api.workers import optional_body
from ops_ui.extensions import sql
from ops_ui.trail import record_action, request_reason


def _redis() -> Any:
    return get_redis(current_app.extensions["celeriac_settings"].redis_url)


def _current(name: str) -> dict[str, Any]:
    found = queue_limits.get_limit(_redis(), current_app.extensions["celeriac_settings"], name)
    return found.as_dict() if found is not None else queue_limits.empty(name)


@bp.get("/queues/<name>/rate-limit")
@api_auth("viewer")
@operation(
    "A queue's global rate limit and where it comes from",
    path=QueuePath,
    answers={200: (RateLimit, "the limit (nulls: none)")},
    errors=(422,),
)
def get_rate_limit(name: str) -> Any:
    return jsonify(_current(name))


@bp.put("/queues/<name>/rate-limit")
@api_auth("admin")
@operation(
    "Set a queue's global rate limit (every worker); wins over CELERIAC_QUEUE_RATE_LIMITS",
    path=QueuePath,
    body=RateLimitBody,
    answers={200: (RateLimit, "the new limit")},
)
def put_rate_limit(name: str) -> Any:
    body = read_body(RateLimitBody)
    before = _current(name)
    limit = queue_limits.set_limit(_redis(), name, body.limit, body.per)
    record_action("queue.rate_limit.set", "queue", name, before=before, after=limit.as_dict())
    return jsonify(limit.as_dict())


@bp.delete("/queues/<name>/rate-limit")
@api_auth("admin")
@operation(
    "Remove the limit set here; a configured one applies again",
    path=QueuePath,
    answers={204: (None, "removed")},
    errors=(422,),
)
def delete_rate_limit(name: str) -> Response:
    before = _current(name)
    if queue_limits.clear_limit(_redis(), name):
        record_action("queue.rate_limit.delete", "queue", name, before=before, after=_current(name))
    return Response(status=204)


def pause_view(queue: str, state: pauses.PauseState | None) -> dict[str, Any]:
    """{queue, paused, by, at, reason}: the last pause or resume (nulls: never paused)."""
    if state is None:
        return {"queue": queue, "paused": False, "by": None, "at": None, "reason": None}
    at = datetime.fromtimestamp(state.at, UTC).isoformat()
    return {"queue": queue, "paused": state.paused, "by": state.by, "at": at, "reason": state.reason}


@bp.get("/queues")
@api_auth("viewer")
@operation("Known queues with their pause state", answers={200: (Queues, "queues")})
def list_queues() -> Any:
    settings = current_app.extensions["celeriac_settings"]
    states = pauses.all_states(_redis())
    names = set(known_queues(sql(), g.principal.tenant_id)) | configured_queues(_redis(), settings)
    return jsonify(queues=[pause_view(name, states.get(name)) for name in sorted(names)])


def _reason_only() -> str | None:
    validated(QueueActionBody, optional_body())
    return request_reason()


@bp.post("/queues/<name>/pause")
@api_auth("admin")
@operation(
    "Stop every worker fetching from the queue; survives worker restarts. Reserved (prefetched) messages "
    "still run. 404: not consumed, configured or used by any job",
    path=QueuePath,
    body=QueueActionBody,
    body_required=False,
    answers={200: (PauseState, "the pause")},
)
def pause_queue(name: str) -> Any:
    state = control_actions.pause_queue(name, g.principal.actor, _reason_only(), record_action)
    return jsonify(pause_view(name, state))


@bp.post("/queues/<name>/resume")
@api_auth("admin")
@operation(
    "Let workers that consumed the queue fetch from it again",
    path=QueuePath,
    body=QueueActionBody,
    body_required=False,
    answers={200: (PauseState, "the resume")},
)
def resume_queue(name: str) -> Any:
    state = control_actions.resume_queue(name, g.principal.actor, _reason_only(), record_action)
    return jsonify(pause_view(name, state))
