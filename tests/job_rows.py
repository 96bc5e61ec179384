"""Execution rows written straight to SQL, for tests of pages and services that read them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import db
from app.models import JobExecution

#: The creation time of `add_job(minutes=0)`.
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def add_job(tenant: str, status: str = "failed", minutes: int = 0, **fields: Any) -> str:
    """A recorded execution of demo.echo, created `minutes` after T0; `fields` override."""
    values: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant,
        "job_class": "demo.echo",
        "queue": "default",
        "status": status,
        "payload": {"value": 1},
        "max_attempts": 1,
        "created_at": T0 + timedelta(minutes=minutes),
    }
    values.update(fields)
    db.session.add(JobExecution(**values))
    db.session.commit()
    return str(values["id"])
