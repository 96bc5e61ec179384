"""Retry a failed or cancelled job with a corrected payload (the console's "edit and retry").

The new execution keeps everything of the old one (class, tenant, queue, priority, tries,
tags) but the payload, and names the old one in `retry_of`, like a plain retry.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import Session

from app.composition.submit import retry_job
from app.config import Settings
from app.crypto import is_sealed
from app.errors import Conflict, ValidationError
from app.kernel.lookup import get_job
from app.kernel.ports import Publisher, Registry
from app.models import ExecutionStatus, JobExecution

#: Largest edited payload accepted, in characters of JSON.
MAX_PAYLOAD_CHARS = 256 * 1024


def parse_payload(text: str) -> dict[str, Any]:
    """The JSON object an operator typed.

    Raises:
        ValidationError: not JSON, not an object, or too long.
    """
    if len(text) > MAX_PAYLOAD_CHARS:
        raise ValidationError(f"the payload is longer than {MAX_PAYLOAD_CHARS} characters")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"the payload is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc
    if not isinstance(value, dict):
        raise ValidationError('the payload must be a JSON object, like {"user_id": 7}')
    return value


def editable(row: JobExecution) -> bool:
    """Whether the console offers "retry with edited payload" for this job."""

    retryable = row.status in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value)
    return retryable and not row.encrypted and not is_sealed(row.payload)


def retry_with_payload(
    session: Session,
    job_id: str,
    tenant_id: str | None,
    payload: dict[str, Any],
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> JobExecution:
    """Run job `job_id` again with `payload` instead of its own.

    Raises:
        NotFound: unknown id or another tenant's job.
        Conflict: the job is not failed or cancelled, or its payload is encrypted.
        ValidationError: the job class is gone or inactive, or the payload is refused.
    """
    old = get_job(session, job_id, tenant_id)
    if old.status in (ExecutionStatus.FAILED.value, ExecutionStatus.CANCELLED.value) and not editable(old):
        raise Conflict(f"job {job_id} has an encrypted payload; it can only be retried as it is")
    return retry_job(
        session, job_id, tenant_id, registry=registry, publisher=publisher, settings=settings, payload=payload
    )
