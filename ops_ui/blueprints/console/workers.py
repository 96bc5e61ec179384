"""Workers: status from heartbeats, and admin control of one worker (W2).

The list and each worker's status card poll every 5 s (htmx partials); the action forms sit
outside the polled part so typing is never interrupted. Commands are the API's
(ops_ui.control_actions): Celery remote control, restart through supervisord.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, request, url_for

from app.control.queues import control_states
from app.control.workers import MAX_POOL_STEP
from app.errors import AppError, NotFound
from app.monitoring.workers import ONLINE, WorkerInfo, list_workers
from ops_ui import control_actions
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis, render_page
from ops_ui.settings import app_settings
from ops_ui.trail import record_action

#: Form actions of the worker page -> what the command needs from the form.
FORM_FIELDS = {
    "pool-grow": "n",
    "pool-shrink": "n",
    "add-consumer": "queue",
    "cancel-consumer": "queue",
    "shutdown": None,
    "restart": None,
}


def utc(epoch: float | None) -> datetime | None:
    """Heartbeat times (epoch seconds) as the `|when` filter takes them."""
    return datetime.fromtimestamp(epoch, UTC) if epoch else None


def _workers() -> list[WorkerInfo]:
    found = list_workers(redis(), app_settings().monitoring)
    return sorted(found, key=lambda w: (w.status != ONLINE, w.heartbeat.hostname))


@bp.get("/workers")
@console_role("viewer")
def workers() -> Any:
    return render_page(
        "console/workers.html",
        "console/workers_table.html",
        workers=_workers(),
        utc=utc,
        offline_after_s=app_settings().monitoring.offline_after_s,
    )


def _detail(hostname: str, error: str | None = None, failed_action: str | None = None, status: int = 200) -> Any:
    info = next((w for w in list_workers(redis(), app_settings().monitoring) if w.heartbeat.hostname == hostname), None)
    if info is None:
        raise NotFound(f"no worker named {hostname!r}")
    state = control_states(redis()).get(hostname) or {}
    body = render_page(
        "console/worker.html",
        "console/worker_status.html",
        w=info,
        utc=utc,
        state=state,
        restart_ready=bool(app_settings().supervisor_url and state.get("supervisor")),
        supervisor_configured=bool(app_settings().supervisor_url),
        max_step=MAX_POOL_STEP,
        error=error,
        failed_action=failed_action,
        form=request.form,
    )
    return body, status


@bp.get("/workers/<hostname>")
@console_role("viewer")
def worker_detail(hostname: str) -> Any:
    return _detail(hostname)


@bp.post("/workers/<hostname>/<action>")
@console_role("admin")
def worker_action(hostname: str, action: str) -> Any:
    if action not in FORM_FIELDS:
        raise NotFound(f"no worker action {action!r}")
    field = FORM_FIELDS[action]
    body: dict[str, Any] = {field: request.form.get(field, "").strip()} if field else {}
    try:
        result = control_actions.worker_command(hostname, action, body, record_action)
    except NotFound:
        raise
    except AppError as exc:  # bad input, offline, refused, no reply: shown on the form
        return _detail(hostname, error=str(exc), failed_action=action, status=exc.status)
    flash(f"{action.replace('-', ' ').capitalize()}: {result.detail}", "success")
    return redirect(url_for("console.worker_detail", hostname=hostname))
