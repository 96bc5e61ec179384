"""Queues: settings, rate limits (J10), pause / resume (W2) and clearing.

GET /api/queues; GET / PUT /api/queues/<name> (settings, docs/queues.md);
GET / PUT / DELETE /api/queues/<name>/rate-limit; POST
/api/queues/<name>/pause and /resume. A queue's limit and pause are global (every worker,
every tenant), so changing them needs the admin role; reading needs viewer. POST
/api/queues/<name>/clear (admin) takes the caller's tenant's waiting jobs only. Changes are
audited. A queue is known when it is a standard one, a worker consumes it, it has a limit
or a pause record, or any job used it: others answer 404 (an invalid name: 422).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, current_app, g, jsonify

from app.backends.current import backends
from app.control import pauses, queue_settings
from app.control.queues import check_queue_name, configured_queues, is_known
from app.errors import NotFound
from app.monitoring.metrics import known_queues
from app.ratelimit import queue_limits
from app.redis_client import get_redis
from app.services import queue_clear
from app.services.bulk_actions import TIME_BUDGET_S
from ops_ui import control_actions, queue_actions
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.control import (
    PauseState,
    QueueActionBody,
    QueuePath,
    RateLimit,
    RateLimitBody,
)
from ops_ui.blueprints.api.models.queues import QueueCleared, QueueList, QueueSettingsBody, QueueSettingsView
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_body, validated
from ops_ui.blueprints.api.workers import optional_body
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
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
@operation("Known queues with their pause state and settings", answers={200: (QueueList, "queues")})
def list_queues() -> Any:
    settings = current_app.extensions["celeriac_settings"]
    states = pauses.all_states(_redis())
    names = set(known_queues(sql(), g.principal.tenant_id)) | configured_queues(_redis(), settings)
    views = queue_settings.list_queue_views(sql(), _redis(), settings, names)
    return jsonify(queues=[{**view, **pause_view(view["queue"], states.get(view["queue"]))} for view in views])


@bp.get("/queues/<name>")
@api_auth("viewer")
@operation(
    "A queue's settings in effect (a queue never configured answers Celeriac's defaults)",
    path=QueuePath,
    answers={200: (QueueSettingsView, "the settings")},
    errors=(422,),
)
def get_queue(name: str) -> Any:
    return jsonify(queue_actions.queue_view(name))


@bp.put("/queues/<name>")
@api_auth("admin")
@operation(
    "Change a queue's settings for every tenant: a field left out stays as it is, null clears it",
    path=QueuePath,
    body=QueueSettingsBody,
    answers={200: (QueueSettingsView, "the settings in effect")},
)
def put_queue(name: str) -> Any:
    changes = read_body(QueueSettingsBody).model_dump(exclude_unset=True)
    return jsonify(queue_actions.update_queue_settings(name, changes, g.principal.actor, record_action))


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


@bp.post("/queues/<name>/clear")
@api_auth("admin")
@operation(
    "Remove the queue's waiting messages of the caller's tenant from the broker (every priority list) and "
    "cancel their jobs, and the jobs held for it for a long delay. 404: not consumed, configured or used by any job",
    path=QueuePath,
    body=QueueActionBody,
    body_required=False,
    answers={200: (QueueCleared, "what was cleared")},
)
def clear_waiting_jobs(name: str) -> Any:
    reason = _reason_only()
    check_queue_name(name)
    settings = app_settings()
    if not is_known(sql(), _redis(), settings, name):
        raise NotFound(f"no queue named {name!r}: it is not consumed, configured or used by any job")
    outcome = queue_clear.clear(
        sql(),
        _redis(),
        backends().canceller,
        name,
        g.principal.tenant_id,
        default_tenant=settings.default_tenant,
        reason=reason,
        time_budget_s=TIME_BUDGET_S,
    )
    record_action("queue.clear", "queue", name, after=outcome.as_dict(), reason=reason)
    return jsonify(cleared=outcome.cleared, cancelled=outcome.cancelled, truncated=outcome.truncated)
