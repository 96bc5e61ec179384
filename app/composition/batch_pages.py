"""Pages of batches and chains for the console: newest first, keyset-paginated, cheap.

A page costs two queries whatever its size: the groups, then one grouped count of their
jobs by status. A group's own jobs are read a page at a time, in dispatch order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from app.composition.batch_views import batch_view_from, chain_state
from app.errors import NotFound
from app.kernel.cursors import decode_position, encode_position
from app.models import JobBatch, JobExecution

#: Groups on one page of the list.
PAGE_SIZE = 25
#: A group's jobs on one page of its detail.
JOBS_PAGE_SIZE = 100
#: Statuses a console shows as columns, in lifecycle order.
STATUSES = ("pending", "processing", "retrying", "completed", "failed", "cancelled")
#: Groups still moving: their pages refresh themselves.
LIVE = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(created_at: datetime, row_id: str) -> str:
    return encode_position(created_at, row_id)


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises: ValidationError if the cursor was not made by `encode_cursor`."""
    created, (row_id,) = decode_position(cursor, 2, "follow the page links")
    return created, row_id


def _groups(
    session: Session, kind: str, tenant_id: str | None, cursor: str | None, limit: int
) -> tuple[list[JobBatch], str | None]:
    query = select(JobBatch).where(JobBatch.kind == kind)
    if tenant_id is not None:
        query = query.where(JobBatch.tenant_id == tenant_id)
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(tuple_(JobBatch.created_at, JobBatch.id) < tuple_(created, row_id))
    rows = list(session.scalars(query.order_by(JobBatch.created_at.desc(), JobBatch.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def status_counts(
    session: Session, column: Any, group_ids: list[str]
) -> dict[str, dict[str, tuple[int, datetime | None]]]:
    """{group id: {status: (jobs, last update)}} for many groups in one grouped query."""
    if not group_ids:
        return {}
    rows = session.execute(
        select(column, JobExecution.status, func.count(), func.max(JobExecution.updated_at))
        .where(column.in_(group_ids))
        .group_by(column, JobExecution.status)
    ).all()
    counts: dict[str, dict[str, tuple[int, datetime | None]]] = {}
    for group_id, status, count, last in rows:
        counts.setdefault(group_id, {})[status] = (int(count), last)
    return counts


def _by_status(counts: dict[str, tuple[int, datetime | None]]) -> dict[str, int]:
    return {status: counts.get(status, (0, None))[0] for status in STATUSES}


def batch_summary(batch: JobBatch, counts: dict[str, tuple[int, datetime | None]]) -> dict[str, Any]:
    """The API's batch view plus a count per status and whether it is still moving."""
    view = batch_view_from(batch, counts)
    return {**view, "counts": _by_status(counts), "live": view["status"] in LIVE}


def chain_summary(chain: JobBatch, counts: dict[str, tuple[int, datetime | None]]) -> dict[str, Any]:
    by_status = _by_status(counts)
    total = len((chain.options or {}).get("job_ids") or []) or sum(by_status.values())
    state = chain_state(chain, by_status, total)
    return {
        "id": chain.id,
        "name": chain.name,
        "tenant_id": chain.tenant_id,
        **state,
        "counts": by_status,
        "catch_job_id": (chain.catch_job or {}).get("id"),
        "created_at": chain.created_at.isoformat(),
        "cancelled_at": chain.cancelled_at.isoformat() if chain.cancelled_at else None,
        "live": state["status"] in LIVE,
    }


def list_batches(session: Session, tenant_id: str | None, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Batches, newest first. Raises: ValidationError for a bad cursor."""
    rows, next_cursor = _groups(session, "batch", tenant_id, cursor, limit)
    counts = status_counts(session, JobExecution.batch_id, [row.id for row in rows])
    items = [{**batch_summary(row, counts.get(row.id, {})), "tenant_id": row.tenant_id} for row in rows]
    return Page(items, next_cursor)


def list_chains(session: Session, tenant_id: str | None, cursor: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Chains, newest first. Raises: ValidationError for a bad cursor."""
    rows, next_cursor = _groups(session, "chain", tenant_id, cursor, limit)
    counts = status_counts(session, JobExecution.chain_id, [row.id for row in rows])
    return Page([chain_summary(row, counts.get(row.id, {})) for row in rows], next_cursor)


def get_group(session: Session, group_id: str, tenant_id: str | None, kind: str) -> JobBatch:
    """Raises: NotFound for an unknown id, another kind, or another tenant's group."""
    row = session.get(JobBatch, group_id)
    if row is None or row.kind != kind or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFound(f"no {kind} {group_id}")
    return row


def group_jobs(
    session: Session, column: Any, group_id: str, cursor: str | None = None, limit: int = JOBS_PAGE_SIZE
) -> tuple[list[JobExecution], str | None]:
    """A group's jobs in dispatch order, a page at a time. Raises: ValidationError for a bad cursor."""
    query = select(JobExecution).where(column == group_id)
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(tuple_(JobExecution.created_at, JobExecution.id) > tuple_(created, row_id))
    rows = list(session.scalars(query.order_by(JobExecution.created_at, JobExecution.id).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


def jobs_by_id(session: Session, job_ids: list[str]) -> dict[str, JobExecution]:
    """Callback and step rows by id (a held callback has no row until it is released)."""
    wanted = [job_id for job_id in job_ids if job_id]
    if not wanted:
        return {}
    return {row.id: row for row in session.scalars(select(JobExecution).where(JobExecution.id.in_(wanted)))}


#: Steps a chain's detail lists; longer chains show their first ones and the counts.
MAX_STEPS_SHOWN = 500


def chain_steps(session: Session, chain_id: str, limit: int = MAX_STEPS_SHOWN) -> list[JobExecution]:
    """A chain's step rows in step order (every step has a row from the start)."""
    query = (
        select(JobExecution)
        .where(JobExecution.chain_id == chain_id)
        .order_by(JobExecution.chain_step, JobExecution.id)
        .limit(limit)
    )
    return list(session.scalars(query))
