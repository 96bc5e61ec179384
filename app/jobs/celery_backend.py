"""Celery in this process: loading task modules, running a job here (dispatch_now), syncing definitions.

The publisher and registry dispatch uses are backends (app.backends.celery_publisher,
app.backends.celery_registry), reached through app.backends.current.
"""

from __future__ import annotations

from typing import Any

from app.backends.celery_registry import CeleryRegistry
from app.celery_app import celery_app
from app.config import get_settings
from app.crypto import SealedError, unseal
from app.db import session_scope
from app.kernel.dispatching import ResolvedJob
from app.services.definitions import sync_definitions
from celeriac import events, signals


def load_task_modules() -> None:
    """Import every module of `imports` so the registry is complete in this process."""
    celery_app.loader.import_default_modules()


def run_in_process(job: ResolvedJob) -> Any:
    """Run `job` eagerly here, recording it as published and run (dispatch_now)."""

    task = celery_app.tasks[job.job_class]
    # Sealed once: the recorded payload and the one the task opens are the same token.
    wire = job.wire_payload()
    signals.emit(
        events.published(
            job_id=job.job_id,
            task=job.job_class,
            queue=job.queue,
            priority=job.priority,
            payload=wire,
            retries=0,
            eta=None,
            expires=None,
            parent_id=None,
            root_id=None,
            celeriac={**job.celeriac_header(), "in_process": True},
        )
    )
    try:
        result = task.apply(
            kwargs=wire,
            task_id=job.job_id,
            headers={"celeriac": job.celeriac_header()},  # type: ignore[dict-item]
        )
        try:
            value = result.get(propagate=True, disable_sync_subtasks=False)
        except SealedError as exc:
            # An encrypted job's error is sealed for everything downstream; the caller of
            # dispatch_now ran it here and gets its own exception back.
            if exc.original is None:
                raise
            raise exc.original from None
        # The task sealed its result like on a worker; the caller here wants it in clear.
        return unseal(value) if job.encrypted and isinstance(value, str) else value
    finally:
        signals.flush_buffer()


def sync_registry_definitions() -> int:
    """Load every task module and add definition rows for new tasks (J3)."""

    load_task_modules()
    registry = CeleryRegistry()
    infos = [info for name in registry.names() if (info := registry.get(name)) is not None]
    descriptions = {name: (celery_app.tasks[name].__doc__ or "").strip() or None for name in registry.names()}
    with session_scope() as session:
        return sync_definitions(session, infos, descriptions, get_settings().max_timeout_s)
