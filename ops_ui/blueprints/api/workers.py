"""`POST /api/workers/{hostname}/{action}` (W2): Celery remote control of one worker (admin).

Actions: shutdown, pool-grow / pool-shrink (body {"n"}), add-consumer / cancel-consumer
(body {"queue"}), and restart (an extension; needs supervisord). 200 when the worker
answered, 202 when it acts after answering (shutdown, restart).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.exceptions import BadRequest

from ops_ui import control_actions
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.trail import record_action


def optional_body() -> dict[str, Any]:
    """The JSON object sent, or {} for an empty body; 400 for anything else."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return {}
    return json_body()


@bp.post("/workers/<hostname>/<action>")
@api_auth("admin")
def worker_action(hostname: str, action: str) -> Any:
    body = optional_body()
    unknown = set(body) - {"n", "queue", "reason"}
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}; send n or queue (and an optional reason)")
    result = control_actions.worker_command(hostname, action, body, record_action)
    return jsonify(result.as_dict()), (202 if result.status == "accepted" else 200)


def openapi_paths() -> dict[str, Any]:
    """This module's and the queue-control paths of /api/openapi.json."""
    problem = {"$ref": "#/components/responses/Problem"}

    def errors(*codes: int) -> dict[str, Any]:
        return {str(code): problem for code in codes}

    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    reason = {"type": "object", "properties": {"reason": {"type": "string", "maxLength": 500}}}
    paused = {"description": "{queue, paused, by, at, reason}"}

    def queue_op(summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": [name],
                "requestBody": {"required": False, "content": {"application/json": {"schema": reason}}},
                "responses": {"200": paused, **errors(400, 401, 403, 404, 422)},
            }
        }

    command = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 64, "description": "pool-grow / pool-shrink"},
            "queue": {"type": "string", "description": "add-consumer / cancel-consumer"},
            "reason": {"type": "string", "maxLength": 500},
        },
    }
    actions = ["shutdown", "pool-grow", "pool-shrink", "add-consumer", "cancel-consumer", "restart"]
    return {
        "/api/queues": {
            "get": {
                "summary": "Known queues with their pause state (viewer)",
                "responses": {"200": {"description": "{queues: [{queue, paused, by, at, reason}]}"}, **errors(401)},
            }
        },
        "/api/queues/{name}/pause": queue_op(
            "Stop every worker fetching from the queue (admin); survives worker restarts. Already reserved "
            "(prefetched) messages still run. 404: not consumed, configured or used by any job; 422: invalid name"
        ),
        "/api/queues/{name}/resume": queue_op("Let workers that consumed the queue fetch from it again (admin)"),
        "/api/workers/{hostname}/{action}": {
            "post": {
                "summary": "Celery remote control of one worker (admin). restart (extension) goes through "
                "supervisord (CELERIAC_SUPERVISOR_URL) and answers 409 without it",
                "parameters": [
                    {"name": "hostname", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "action", "in": "path", "required": True, "schema": {"type": "string", "enum": actions}},
                ],
                "requestBody": {"required": False, "content": {"application/json": {"schema": command}}},
                "responses": {
                    "200": {"description": "{hostname, action, status: done, detail}: the worker answered"},
                    "202": {"description": "{hostname, action, status: accepted, detail}: stopping or restarting"},
                    **errors(400, 401, 403, 404, 409, 422, 503),
                },
            }
        },
    }
