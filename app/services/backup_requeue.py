"""`flask celeriac import --requeue-pending`: publish again imported pending jobs the broker lacks.

A pending job restored from a backup may still have its message in the broker (an import
into the database it came from, or a broker that kept its data) or may have none (a new
Redis). Publishing it again only when no queue list of its queue, and no worker's
unacknowledged message, holds its id keeps one message per job. The message is rebuilt
from the row (app.kernel.message.republish), as the reconciler does for a lost message.

Left alone: jobs never published (held for dependencies or a chain step: their release
publishes them), jobs waiting for a due time (`due_at`: Celeriac's scheduled set releases
them), and rows whose message cannot be rebuilt (a plain Celery task seen by the recorder).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.kernel.message import can_rebuild, republish
from app.models import JobExecution
from app.recording.broker_view import Broker

#: Messages read from a queue list at a time.
CHUNK = 1000
#: Rows loaded at a time.
PAGE = 500


@dataclass
class RequeueReport:
    requeued: int = 0
    already_queued: int = 0
    left: int = 0


def queued_ids(broker: Broker, queue: str) -> set[str]:
    """Ids of the jobs whose message waits in `queue` (over its priority lists)."""
    found: set[str] = set()
    for name in broker.queue_lists(queue):
        start = 0
        while True:
            chunk = broker.client.lrange(name, start, start + CHUNK - 1)
            for raw in chunk:
                job_id = _message_id(raw)
                if job_id:
                    found.add(job_id)
            if len(chunk) < CHUNK:
                break
            start += CHUNK
    return found


def _message_id(raw: bytes) -> str | None:
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return None
    job_id = headers.get("id")
    return job_id if isinstance(job_id, str) else None


def requeue_pending(session: Session, job_ids: Iterable[str], broker: Broker, producer: Any = None) -> RequeueReport:
    """Publish each of `job_ids` still pending whose message is in no broker queue."""
    report = RequeueReport()
    in_flight = {entry.job_id for entry in broker.unacked() if entry.job_id}
    by_queue: dict[str, set[str]] = {}
    ids = list(job_ids)
    for start in range(0, len(ids), PAGE):
        rows = session.scalars(select(JobExecution).where(JobExecution.id.in_(ids[start : start + PAGE])))
        for row in rows:
            if row.status != "pending" or row.due_at is not None or not can_rebuild(row):
                report.left += 1
                continue
            if row.queue not in by_queue:
                by_queue[row.queue] = queued_ids(broker, row.queue)
            if row.id in by_queue[row.queue] or row.id in in_flight:
                report.already_queued += 1
                continue
            republish(row, producer)
            row.published_at = datetime.now(UTC)  # never earlier than the message (reconciler)
            report.requeued += 1
        session.commit()
    return report
