"""Failure reports and fingerprint groups as the API shows them (F4).

Both read `failure_groups` and indexed lookups; neither scans `job_executions`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.orm import Session

from app.errors import Conflict, ValidationError
from app.kernel.cursors import decode_position, encode_position
from app.kernel.fingerprint import fingerprint
from app.kernel.lookup import get_job
from app.models import ExecutionStatus, FailureGroup, JobAttempt

#: Largest page of GET /api/monitoring/failures.
MAX_GROUP_PAGE = 200
DEFAULT_GROUP_PAGE = 50


def parse_instant(value: Any, name: str) -> datetime:
    """An ISO 8601 date or time (a time without an offset is UTC).

    Raises:
        ValidationError: not a string in ISO 8601 form.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be an ISO 8601 date or time, e.g. 2026-01-31T00:00:00+00:00")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(f"{name} is not an ISO 8601 date or time: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def group_to_dict(group: FailureGroup) -> dict[str, Any]:
    return {
        "fingerprint": group.fingerprint,
        "tenant_id": group.tenant_id,
        "exception_type": group.exception_type,
        "message": group.message,
        "last_message": group.last_message,
        "frames": group.frames or [],
        "job_classes": group.job_classes or [],
        "count": group.count,
        "first_seen": _iso(group.first_seen_at),
        "last_seen": _iso(group.last_seen_at),
        "sample_job_ids": group.sample_job_ids or [],
    }


def failure_report(session: Session, job_id: str, tenant_id: str | None) -> dict[str, Any]:
    """Exception, traceback, attempts timeline, fingerprint and similar failures of a job.

    Raises:
        NotFound: unknown id, or another tenant's job.
        Conflict: the job has not failed (and no attempt of it failed).
    """
    row = get_job(session, job_id, tenant_id)
    attempts = list(
        session.scalars(select(JobAttempt).where(JobAttempt.execution_id == row.id).order_by(JobAttempt.number))
    )
    failed = row.status == ExecutionStatus.FAILED.value
    if not failed and row.error_message is None and all(a.error_message is None for a in attempts):
        raise Conflict(f"job {job_id} is {row.status} and has no failure to report")
    key = row.fingerprint
    if key is None and failed:  # failed outside the recorder (never queued) or before fingerprints
        key = fingerprint(row.exception_type, row.error_message, row.exception_trace, row.job_class).key
    group = session.get(FailureGroup, (row.tenant_id, key)) if key else None
    # The group counts this job only once it failed for good through the recorder.
    similar = (group.count - (1 if row.fingerprint else 0)) if group is not None else 0
    return {
        "id": row.id,
        "job_class": row.job_class,
        "queue": row.queue,
        "status": row.status,
        "exception": {"type": row.exception_type, "message": row.error_message},
        "traceback": row.exception_trace,
        "failed_at": _iso(row.failed_at),
        "attempts": [
            {
                "number": a.number,
                "status": a.status,
                "worker_id": a.worker_id,
                "started_at": _iso(a.started_at),
                "finished_at": _iso(a.finished_at),
                "runtime_ms": a.runtime_ms,
                "error": a.error_message,
            }
            for a in attempts
        ],
        "max_attempts": row.max_attempts,
        "fingerprint": key,
        "similar_failures_count": max(similar, 0),
        "group": group_to_dict(group) if group is not None else None,
    }


def _encode(group: FailureGroup) -> str:
    return encode_position(group.last_seen_at, group.tenant_id, group.fingerprint)


def _decode(cursor: str) -> tuple[datetime, str, str]:
    seen, (tenant, key) = decode_position(cursor, 3, "use next_cursor from a previous page")
    return seen, tenant, key


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_failure_groups(
    session: Session,
    tenant_id: str | None,
    *,
    job_class: str | None = None,
    since: datetime | None = None,
    limit: int = DEFAULT_GROUP_PAGE,
    cursor: str | None = None,
) -> tuple[list[FailureGroup], str | None]:
    """Groups newest first (by last failure), keyset-paginated.

    Raises:
        ValidationError: bad limit or cursor.
    """
    if not 1 <= limit <= MAX_GROUP_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_GROUP_PAGE}")
    g = FailureGroup
    query = select(g)
    if tenant_id is not None:
        query = query.where(g.tenant_id == tenant_id)
    if since is not None:
        query = query.where(g.last_seen_at >= since)
    if job_class:
        # job_classes is a short JSON list of strings; its text holds the quoted name.
        query = query.where(cast(g.job_classes, String).like(f'%"{_like_literal(job_class)}"%', escape="\\"))
    if cursor:
        seen, tenant, key = _decode(cursor)
        query = query.where(
            or_(
                g.last_seen_at < seen,
                and_(
                    g.last_seen_at == seen, or_(g.tenant_id < tenant, and_(g.tenant_id == tenant, g.fingerprint < key))
                ),
            )
        )
    query = query.order_by(g.last_seen_at.desc(), g.tenant_id.desc(), g.fingerprint.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], (_encode(rows[limit - 1]) if len(rows) > limit else None)
