"""Listing job executions as the API and console see them (J2, F5)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.kernel.cursors import decode_position, encode_position
from app.models import ExecutionStatus, JobExecution

#: Largest page of GET /api/jobs.
MAX_PAGE = 200
DEFAULT_PAGE = 50


@dataclass(frozen=True)
class JobFilter:
    tenant_id: str | None
    status: str | None = None
    queue: str | None = None
    job_class: str | None = None


def encode_cursor(row: JobExecution) -> str:
    return encode_position(row.created_at, row.id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises: ValidationError if the cursor was not made by `encode_cursor`."""
    created, (job_id,) = decode_position(cursor, 2, "use next_cursor from a previous page")
    return created, job_id


def list_jobs(
    session: Session, flt: JobFilter, limit: int = DEFAULT_PAGE, cursor: str | None = None
) -> tuple[list[JobExecution], str | None]:
    """Newest first, keyset-paginated on (created_at, id).

    Raises:
        ValidationError: bad status, limit or cursor.
    """
    if flt.status is not None and flt.status not in {s.value for s in ExecutionStatus}:
        raise ValidationError(f"status must be one of {', '.join(s.value for s in ExecutionStatus)}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
    query = select(JobExecution)
    if flt.tenant_id is not None:
        query = query.where(JobExecution.tenant_id == flt.tenant_id)
    if flt.status:
        query = query.where(JobExecution.status == flt.status)
    if flt.queue:
        query = query.where(JobExecution.queue == flt.queue)
    if flt.job_class:
        query = query.where(JobExecution.job_class == flt.job_class)
    if cursor:
        created, job_id = decode_cursor(cursor)
        # A row-value comparison: SQLite and PostgreSQL seek the (tenant, created_at, id)
        # index with it, where the equivalent OR made SQLite walk half the table.
        query = query.where(tuple_(JobExecution.created_at, JobExecution.id) < tuple_(created, job_id))
    query = query.order_by(JobExecution.created_at.desc(), JobExecution.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor
