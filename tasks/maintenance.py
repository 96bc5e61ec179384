"""Maintenance tasks: history retention (E3, run by beat) and one reconciler pass (R1, on demand)."""

from __future__ import annotations

from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.db import session_scope
from app.recorder import reconcile_once
from app.redis_client import get_redis
from app.services.retention import purge_history


@celery_app.task(name="celeriac.maintenance.purge_history")
def purge_history_task() -> dict[str, int]:
    """Purge executions past their retention, in short transactions (safe to run any time)."""
    with session_scope() as session:
        return purge_history(session, get_settings()).as_dict()


@celery_app.task(name="celeriac.maintenance.reap_stuck")
def reap_stuck_task() -> dict[str, Any] | None:
    """One reconciler pass (the recorder runs it on its own; this name stays for messages
    queued by an older beat schedule, and for running it from a worker on purpose)."""

    settings = get_settings()
    report = reconcile_once(settings, get_redis(settings.redis_url), name="maintenance-task")
    return report.as_dict() if report is not None else None
