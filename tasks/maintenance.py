"""Maintenance tasks beat runs (celeryconfig's beat_schedule): history retention (E3)."""

from __future__ import annotations

from app.celery_app import celery_app
from app.config import get_settings
from app.db import session_scope
from app.services.retention import purge_history


@celery_app.task(name="celeriac.maintenance.purge_history")
def purge_history_task() -> dict[str, int]:
    """Purge executions past their retention, in short transactions (safe to run any time)."""
    with session_scope() as session:
        return purge_history(session, get_settings()).as_dict()
