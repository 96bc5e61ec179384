"""Rows the console tests read: executions and per-minute aggregates, as the recorder writes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.db import db
from app.kernel.aggregates import Aggregator
from app.models import JobExecution


def add_execution(
    tenant: str, job_class: str = "demo.echo", status: str = "completed", queue: str = "default", age_s: float = 0
) -> JobExecution:
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    row = JobExecution(
        id=str(uuid.uuid4()),
        tenant_id=tenant,
        job_class=job_class,
        queue=queue,
        status=status,
        created_at=at,
        updated_at=at,
        payload={"value": 1},
    )
    db.session.add(row)
    db.session.commit()
    return row


def add_finished(
    tenant: str,
    status: str,
    count: int = 1,
    job_class: str = "demo.echo",
    queue: str = "default",
    minutes_ago: float = 0,
    runtime_ms: int | None = 40,
    waited_ms: int | None = None,
) -> None:
    """Fold `count` finished runs (status "retried": attempts that will retry) into job_stats_minute
    through the recorder's aggregator."""
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    agg = Aggregator()
    for _ in range(count):
        if status == "retried":
            agg.retry(at, tenant, queue, job_class)
        else:
            agg.add(
                at, tenant, queue, job_class, status, runtime_ms if status == "completed" else None, None, waited_ms
            )
    agg.flush(db.session.connection())
    db.session.commit()
