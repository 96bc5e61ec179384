"""Batches and chains as the API and console show them, counted from their jobs' own rows.

Counts are read, never kept: a batch's figures cannot drift from its jobs' history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ExecutionStatus, JobBatch, JobExecution


def status_counts(session: Session, column: Any, group_id: str) -> dict[str, tuple[int, datetime | None]]:
    rows = session.execute(
        select(JobExecution.status, func.count(), func.max(JobExecution.updated_at))
        .where(column == group_id)
        .group_by(JobExecution.status)
    ).all()
    return {status: (int(count), last) for status, count, last in rows}


def batch_view(session: Session, batch: JobBatch) -> dict[str, Any]:
    """The batch as `GET /api/batches/{id}` shows it, counted from its jobs' rows."""
    return batch_view_from(batch, status_counts(session, JobExecution.batch_id, batch.id))


def batch_view_from(batch: JobBatch, counts: dict[str, tuple[int, datetime | None]]) -> dict[str, Any]:
    """`batch_view` from counts already read ({status: (jobs, last update)}), e.g. for a page of batches."""
    total = sum(n for n, _ in counts.values())
    failed = sum(counts.get(s, (0, None))[0] for s in ("failed", "cancelled"))
    processed = failed + counts.get("completed", (0, None))[0]
    started = processed + counts.get("processing", (0, None))[0] + counts.get("retrying", (0, None))[0]
    finished_at = None
    if batch.cancelled_at is not None:
        status = "cancelled"
    elif total and processed >= total:
        status = "failed" if failed > batch.allow_failures else "finished"
        finished_at = max((last for _, last in counts.values() if last is not None), default=None)
    else:
        status = "running" if started else "pending"
    return {
        "id": batch.id,
        "name": batch.name,
        "status": status,
        "total_jobs": total,
        "pending_jobs": total - processed,
        "processed_jobs": processed,
        "failed_jobs": failed,
        "allow_failures": batch.allow_failures,
        "progress": int(processed * 100 / total) if total else 0,
        "then_job_id": (batch.then_job or {}).get("id"),
        "catch_job_id": (batch.catch_job or {}).get("id"),
        "finally_job_id": (batch.finally_job or {}).get("id"),
        "created_at": batch.created_at.isoformat(),
        "finished_at": finished_at.isoformat() if finished_at else None,
        "cancelled_at": batch.cancelled_at.isoformat() if batch.cancelled_at else None,
    }


def chain_view(session: Session, chain: JobBatch) -> dict[str, Any]:
    """The chain as `GET /api/chains/{id}` shows it: current step counts from 1."""
    ids: list[str] = list((chain.options or {}).get("job_ids") or [])
    statuses = dict(
        session.execute(select(JobExecution.id, JobExecution.status).where(JobExecution.chain_id == chain.id)).all()
    )
    ordered = [statuses.get(job_id, ExecutionStatus.PENDING.value) for job_id in ids]
    state = chain_state(chain, Counter(ordered), len(ordered))
    return {
        "id": chain.id,
        "name": chain.name,
        **state,
        "job_ids": ids,
        "steps": [{"id": job_id, "status": s} for job_id, s in zip(ids, ordered, strict=True)],
        "catch_job_id": (chain.catch_job or {}).get("id"),
        "created_at": chain.created_at.isoformat(),
    }


def chain_state(chain: JobBatch, by_status: Mapping[str, int], total: int) -> dict[str, Any]:
    """Status, current step (from 1) and progress of a chain from its steps' status counts.

    Steps run one after another, so the completed ones are the first ones and the current
    step is the one after them.
    """
    done = by_status.get(ExecutionStatus.COMPLETED.value, 0)
    if by_status.get(ExecutionStatus.FAILED.value):
        status = "failed"
    elif chain.cancelled_at is not None or by_status.get(ExecutionStatus.CANCELLED.value):
        status = "cancelled"
    elif done == total:
        status = "finished"
    elif done or by_status.get("processing") or by_status.get("retrying"):
        status = "running"
    else:
        status = "pending"
    return {
        "status": status,
        "current_step": min(done + 1, total),
        "total_steps": total,
        "progress": int(done * 100 / total) if total else 0,
    }
