"""Plain functions turning models into API / template data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.crypto import REDACTED, is_sealed
from app.models import JobExecution

ENCRYPTED = REDACTED


def is_encrypted(row: JobExecution) -> bool:
    """Whether payload and result must be hidden (J9).

    The payload check also covers a row written before the recorder saw the job's header.
    """
    return bool(row.encrypted) or is_sealed(row.payload)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_to_dict(row: JobExecution) -> dict[str, Any]:
    """The job representation of API.md `GET /api/jobs/{id}` (plus a few extras)."""
    encrypted = is_encrypted(row)
    return {
        "id": row.id,
        "job_class": row.job_class,
        "queue": row.queue,
        "priority": row.priority,
        "status": row.status,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "payload": ENCRYPTED if encrypted else row.payload,
        "result": ENCRYPTED if encrypted and row.result is not None else row.result,
        "error_message": row.error_message,
        "exception_type": row.exception_type,
        "exception_trace": row.exception_trace,
        "worker_id": row.worker_id,
        "execution_time_ms": row.execution_time_ms,
        "memory_usage_mb": row.memory_usage_mb,
        "tags": row.tags or [],
        "tenant_id": row.tenant_id,
        "batch_id": row.batch_id,
        "chain_id": row.chain_id,
        "chain_step": row.chain_step,
        "depends_on": row.depends_on or [],
        "throttled_until": iso(row.throttled_until),
        "retry_of": row.retry_of,
        "eta": iso(row.eta),
        "created_at": iso(row.created_at),
        "started_at": iso(row.started_at),
        "completed_at": iso(row.completed_at),
        "failed_at": iso(row.failed_at),
        "cancelled_at": iso(row.cancelled_at),
        "updated_at": iso(row.updated_at),
    }
