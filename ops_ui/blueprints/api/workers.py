"""`POST /api/workers/{hostname}/{action}` (W2): Celery remote control of one worker (admin).

Actions: shutdown, pool-grow / pool-shrink (body {"n"}), add-consumer / cancel-consumer
(body {"queue"}), and restart (an extension; needs supervisord). 200 when the worker
answered, 202 when it acts after answering (shutdown, restart).
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from ops_ui import control_actions
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.control import WorkerCommandBody, WorkerCommandResult, WorkerPath
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.blueprints.api.validation import validated
from ops_ui.trail import record_action


def optional_body() -> dict[str, Any]:
    """The JSON object sent, or {} for an empty body; 400 for anything else."""
    chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if not request.content_length and not chunked:
        return {}
    return json_body()


@bp.post("/workers/<hostname>/<action>")
@api_auth("admin")
@operation(
    "Celery remote control of one worker; restart goes through supervisord (CELERIAC_SUPERVISOR_URL)",
    path=WorkerPath,
    body=WorkerCommandBody,
    body_required=False,
    answers={
        200: (WorkerCommandResult, "the worker answered"),
        202: (WorkerCommandResult, "it stops or restarts after answering"),
    },
    errors=(409,),
)
def worker_action(hostname: str, action: str) -> Any:
    body = optional_body()
    validated(WorkerCommandBody, body)
    result = control_actions.worker_command(hostname, action, body, record_action)
    return jsonify(result.as_dict()), (202 if result.status == "accepted" else 200)
