"""Job definitions (J3): synced from the code registry, edited by admins."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import JobDefinition
from app.services.dispatching import TaskInfo


def sync_definitions(
    session: Session,
    tasks: Iterable[TaskInfo],
    descriptions: dict[str, str | None],
    max_timeout_s: int = 900,
) -> int:
    """Insert a row for every registered task that has none; returns rows added.

    Existing rows are left alone: an admin's edits win over code defaults.
    """
    known = set(session.scalars(select(JobDefinition.job_class)))
    added = 0
    for info in tasks:
        if info.name in known:
            continue
        session.add(
            JobDefinition(
                name=info.name,
                job_class=info.name,
                description=descriptions.get(info.name),
                default_queue=info.queue,
                priority=info.priority,
                max_attempts=info.max_attempts,
                timeout=min(info.timeout_s or 300, max_timeout_s),
                retry_after=60,
                is_active=True,
            )
        )
        added += 1
    session.flush()
    return added
