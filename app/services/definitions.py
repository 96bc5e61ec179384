"""Job definitions (J3): synced from the code registry, edited by admins, per tenant (U6).

Rows with tenant_id NULL are the global defaults (from code, editable by a superadmin).
A tenant's admin never changes them: the first edit copies the global row into an
override of that tenant, which dispatch then prefers (`dispatching.find_definition`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound, ValidationError
from app.kernel.dispatching import TaskInfo, _is_queue_name, find_definition
from app.models import JobDefinition
from celeriac.priority import is_valid_priority

#: Fields an admin may change, as the API and the console name them.
EDITABLE = (
    "description",
    "default_queue",
    "priority",
    "max_attempts",
    "timeout",
    "retry_after",
    "is_active",
    "tags",
    "metadata",
)
MAX_DESCRIPTION = 2000
MAX_TAGS = 20
MAX_TAG = 100
#: Same ceiling as a dispatch's max_attempts option.
MAX_ATTEMPTS = 100
#: A day; a longer pause between attempts is a schedule, not a retry.
MAX_RETRY_AFTER_S = 86_400


@dataclass(frozen=True)
class Limits:
    """Bounds that come from settings."""

    max_timeout_s: int


def sync_definitions(
    session: Session,
    tasks: Iterable[TaskInfo],
    descriptions: dict[str, str | None],
    max_timeout_s: int = 900,
) -> int:
    """Insert a global row for every registered task that has none; returns rows added.

    Existing rows are left alone: an admin's edits win over code defaults.
    """
    known = set(session.scalars(select(JobDefinition.job_class).where(JobDefinition.tenant_id.is_(None))))
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


def definition_view(row: JobDefinition, tenant_id: str | None) -> dict[str, Any]:
    """The public shape: the effective values, and whether they are the tenant's own."""
    return {
        "job_class": row.job_class,
        "name": row.name,
        "description": row.description,
        "default_queue": row.default_queue,
        "priority": row.priority,
        "max_attempts": row.max_attempts,
        "timeout": row.timeout,
        "retry_after": row.retry_after,
        "is_active": row.is_active,
        "tags": list(row.tags or []),
        "metadata": dict(row.meta or {}),
        "overridden": tenant_id is not None and row.tenant_id == tenant_id,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def list_definitions(session: Session, tenant_id: str | None) -> list[JobDefinition]:
    """Every class's effective definition for the tenant (its override, else the global row).

    One query: the global rows and the tenant's overrides, merged here.
    """
    query = select(JobDefinition)
    if tenant_id is None:
        query = query.where(JobDefinition.tenant_id.is_(None))
    else:
        query = query.where(or_(JobDefinition.tenant_id.is_(None), JobDefinition.tenant_id == tenant_id))
    effective: dict[str, JobDefinition] = {}
    for row in session.scalars(query):
        if row.job_class not in effective or row.tenant_id is not None:
            effective[row.job_class] = row
    return [effective[name] for name in sorted(effective)]


def get_definition(session: Session, job_class: str, tenant_id: str | None) -> JobDefinition:
    """The effective definition of `job_class` for the tenant.

    Raises:
        NotFound: no such job class is defined.
    """
    row = find_definition(session, job_class, tenant_id)
    if row is None:
        raise NotFound(f"no job definition {job_class!r}")
    return row


def update_definition(
    session: Session, job_class: str, tenant_id: str | None, changes: dict[str, Any], limits: Limits
) -> JobDefinition:
    """Validate `changes` and apply them to the tenant's override (created on first edit),
    or to the global row for `tenant_id=None` (a superadmin). Commits.

    Raises:
        NotFound: no such job class.
        ValidationError: an unknown field, no field, or a value out of range; nothing changes.
    """
    values = validate_changes(changes, limits)
    try:
        return _save(session, job_class, tenant_id, values)
    except IntegrityError:
        # Another request created this tenant's override a moment ago: change that one.
        session.rollback()
        return _save(session, job_class, tenant_id, values)


def _save(session: Session, job_class: str, tenant_id: str | None, values: dict[str, Any]) -> JobDefinition:
    row = get_definition(session, job_class, tenant_id)
    if tenant_id is not None and row.tenant_id is None:
        row = _override_of(row, tenant_id)
        session.add(row)
    for key, value in values.items():
        setattr(row, "meta" if key == "metadata" else key, value)
    session.commit()
    return row


def reset_definition(session: Session, job_class: str, tenant_id: str | None) -> JobDefinition:
    """Drop the tenant's override: the global definition applies again. Commits.

    Returns the definition now in effect.

    Raises:
        NotFound: no such job class.
        Conflict: called without a tenant (global rows are never removed).
    """
    current = get_definition(session, job_class, tenant_id)
    if tenant_id is None:
        raise Conflict("global definitions come from code and cannot be reset; edit them instead")
    if current.tenant_id is not None:
        session.delete(current)
        session.commit()
    return get_definition(session, job_class, tenant_id)


def _override_of(base: JobDefinition, tenant_id: str) -> JobDefinition:
    return JobDefinition(
        tenant_id=tenant_id,
        name=base.name,
        job_class=base.job_class,
        description=base.description,
        default_queue=base.default_queue,
        priority=base.priority,
        max_attempts=base.max_attempts,
        timeout=base.timeout,
        retry_after=base.retry_after,
        is_active=base.is_active,
        tags=list(base.tags) if base.tags is not None else None,
        meta=dict(base.meta) if base.meta is not None else None,
    )


def validate_changes(changes: dict[str, Any], limits: Limits) -> dict[str, Any]:
    """The changes, checked; every problem in one message.

    Raises:
        ValidationError: unknown fields, no fields, or invalid values.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ValidationError(f"unknown field(s) {', '.join(unknown)}; editable: {', '.join(EDITABLE)}")
    if not changes:
        raise ValidationError(f"name at least one field to change: {', '.join(EDITABLE)}")
    problems = field_errors(changes, limits)
    if problems:
        raise ValidationError("; ".join(problems.values()))
    return dict(changes)


def field_errors(changes: dict[str, Any], limits: Limits) -> dict[str, str]:
    """What is wrong with each given field (empty when all are valid); the console shows these."""
    checks: dict[str, Callable[[Any], str | None]] = {
        "description": _check_description,
        "default_queue": _check_queue,
        "priority": _check_priority,
        "max_attempts": lambda v: _check_int(v, "max_attempts", 1, MAX_ATTEMPTS),
        "timeout": lambda v: _check_int(v, "timeout", 1, limits.max_timeout_s),
        "retry_after": lambda v: _check_int(v, "retry_after", 0, MAX_RETRY_AFTER_S),
        "is_active": _check_bool,
        "tags": _check_tags,
        "metadata": _check_metadata,
    }
    problems: dict[str, str] = {}
    for key, value in changes.items():
        check = checks.get(key)
        problem = check(value) if check is not None else None
        if problem:
            problems[key] = problem
    return problems


def _check_int(value: Any, name: str, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number"
    if not low <= value <= high:
        return f"{name} must be from {low} to {high}, got {value}"
    return None


def _check_priority(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or not is_valid_priority(value):
        return f"priority must be an integer from 0 to 9, got {value!r}"
    return None


def _check_description(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > MAX_DESCRIPTION):
        return f"description must be text of at most {MAX_DESCRIPTION} characters"
    return None


def _check_queue(value: Any) -> str | None:
    if not isinstance(value, str) or not _is_queue_name(value):
        return "default_queue must be 1-100 characters of letters, digits, '.', '_' or '-'"
    return None


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "is_active must be true or false"


def _check_tags(value: Any) -> str | None:
    if (
        not isinstance(value, list)
        or len(value) > MAX_TAGS
        or not all(isinstance(tag, str) and 0 < len(tag.strip()) <= MAX_TAG for tag in value)
    ):
        return f"tags must be a list of at most {MAX_TAGS} non-empty strings of at most {MAX_TAG} characters"
    return None


def _check_metadata(value: Any) -> str | None:
    return None if value is None or isinstance(value, dict) else "metadata must be an object"
