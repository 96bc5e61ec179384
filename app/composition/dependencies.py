"""Validation of `depends_on` (J7): known ids of the same tenant, and no cycles."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.models import JobExecution

#: Most dependencies one job may name.
MAX_DEPENDENCIES = 100
#: Longest dependency path walked when looking for a cycle.
MAX_DEPTH = 1000


def check_dependencies(session: Session, job_id: str, tenant_id: str, depends_on: Sequence[str]) -> None:
    """Refuse unknown ids, another tenant's jobs (reported as unknown) and cycles.

    Raises:
        ValidationError: with the offending ids.
    """
    if len(depends_on) > MAX_DEPENDENCIES:
        raise ValidationError(f"a job may depend on at most {MAX_DEPENDENCIES} jobs")
    if job_id in depends_on:
        raise ValidationError("a job cannot depend on itself")
    rows = dict(
        session.execute(
            select(JobExecution.id, JobExecution.depends_on).where(
                JobExecution.id.in_(list(depends_on)), JobExecution.tenant_id == tenant_id
            )
        ).all()
    )
    unknown = [dep for dep in depends_on if dep not in rows]
    if unknown:
        raise ValidationError(f"depends_on names unknown jobs: {', '.join(unknown)}")
    _refuse_cycle(session, job_id, rows)


def _refuse_cycle(session: Session, job_id: str, frontier: dict[str, list[str] | None]) -> None:
    """Walk the dependencies' own dependencies; meeting `job_id` again is a cycle."""
    seen: set[str] = set(frontier)
    layer = [dep for deps in frontier.values() for dep in deps or []]
    for _ in range(MAX_DEPTH):
        layer = [dep for dep in layer if dep not in seen]
        if not layer:
            return
        if job_id in layer:
            raise ValidationError(f"depends_on would create a cycle through job {job_id}")
        seen.update(layer)
        rows = session.execute(
            select(JobExecution.depends_on).where(JobExecution.id.in_(layer), JobExecution.depends_on.is_not(None))
        ).scalars()
        layer = [dep for deps in rows for dep in deps or []]
    raise ValidationError("depends_on is nested too deeply")
