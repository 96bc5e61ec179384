"""Per-queue settings (the seeds' `define_queue`): defaults for the jobs of one queue.

Every column but `name` is optional: NULL means "not set here". A job's own options (its
dispatch, what its class states, an admin's edit of its definition) win, then these, then
Celeriac's defaults (docs/queues.md). Shared by every tenant, like pause.
The queue's rate limit is not here: it stays in the one Redis store every worker reads
(app.ratelimit.queue_limits), and the queue API shows both as one resource.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import db
from app.models.base import Timestamps


class QueueSettings(Timestamps, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "queues"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Seconds before a retry when the job gives no backoff of its own.
    retry_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Seconds a job may run (soft time limit).
    timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    encrypted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    #: Share of a worker's takes when it consumes several queues (weighted consumption).
    weight: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Dispatch beyond this many pending jobs answers 429.
    max_pending: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
