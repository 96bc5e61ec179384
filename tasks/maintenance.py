"""Maintenance tasks beat runs (celeryconfig's beat_schedule): history retention (E3), stuck-job reaper (M3)."""

from __future__ import annotations

from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.db import session_scope
from app.services.retention import purge_history


@celery_app.task(name="celeriac.maintenance.purge_history")
def purge_history_task() -> dict[str, int]:
    """Purge executions past their retention, in short transactions (safe to run any time)."""
    with session_scope() as session:
        return purge_history(session, get_settings()).as_dict()


@celery_app.task(name="celeriac.maintenance.reap_stuck")
def reap_stuck_task() -> dict[str, Any]:
    """Fail (or re-queue, by policy) jobs whose worker went offline; jobs on live workers are left alone."""
    from app.jobs.dispatch import get_publisher, get_registry
    from app.monitoring.reaper import reap_orphans
    from app.redis_client import get_redis

    settings = get_settings()
    with session_scope() as session:
        report = reap_orphans(
            session,
            get_redis(settings.redis_url),
            settings,
            actor="maintenance",
            registry=get_registry(),
            publisher=get_publisher(),
        )
        return report.as_dict()
