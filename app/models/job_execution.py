"""Job executions (one row per job id) and their attempts, with the status rules.

Events reach the recorder duplicated and out of order (CELERY-NOTES.md), so status
changes are forward-only: a terminal status is never replaced, and among live statuses
the change with the later event time wins.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import db
from app.models.base import JSONType, UTCDateTime, utcnow


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


#: Statuses an execution never leaves.
TERMINAL_STATUSES = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})
#: Statuses in which a job may still run (cancel is allowed; retry is not).
LIVE_STATUSES = frozenset({ExecutionStatus.PENDING, ExecutionStatus.RETRYING, ExecutionStatus.PROCESSING})


def may_change_status(
    current: ExecutionStatus, current_ts: float, new_ts: float, new: ExecutionStatus | None = None
) -> bool:
    """Whether an event at `new_ts` (giving status `new`) may replace `current` (set at `current_ts`).

    A final outcome replaces any live status whatever the clocks say: workers and the web
    process may disagree by milliseconds, and an outcome is never older than a live state.
    """
    if current.is_terminal:
        return False
    if new is not None and new.is_terminal:
        return True
    return new_ts >= current_ts


class JobExecution(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "job_executions"
    __table_args__ = (
        Index("ix_exec_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_exec_tenant_created_id", "tenant_id", "created_at", "id"),
        Index("ix_exec_created_id", "created_at", "id"),
        Index("ix_exec_queue_status", "queue", "status"),
        Index("ix_exec_job_class", "job_class", "created_at"),
        Index("ix_exec_batch", "batch_id"),
        Index("ix_exec_chain", "chain_id"),
        Index("ix_exec_status_updated", "status", "updated_at"),
        Index("ix_exec_tenant_fingerprint", "tenant_id", "fingerprint"),
        # The reconciler's question: which live jobs of a queue were published before
        # the oldest message still in its lists (app.recording.reconcile).
        Index("ix_exec_live_published", "status", "queue", "published_at"),
        # Rebuilding Celeriac's scheduled set from SQL after a Redis data loss.
        Index("ix_exec_due_at", "due_at"),
        Index("ix_exec_group", "group_id"),
    )

    #: The Celery task id.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), nullable=False, default="default")
    job_definition_id: Mapped[str | None] = mapped_column(
        ForeignKey("job_definitions.id", ondelete="SET NULL"), nullable=True
    )
    job_class: Mapped[str] = mapped_column(String(200), nullable=False, default="unknown")
    queue: Mapped[str] = mapped_column(String(100), nullable=False, default="default")
    #: 0 (lowest) to 9 (highest), Celeriac's scale; see celeriac.priority for Redis's.
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=5)
    payload: Mapped[Any] = mapped_column(JSONType, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    #: Event time (epoch seconds) of the change that set `status`; orders late events.
    status_ts: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    eta: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    exception_type: Mapped[str | None] = mapped_column(String(200), nullable=True)
    exception_trace: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Failure group of a job that failed for good (F4; see app.kernel.fingerprint).
    fingerprint: Mapped[str | None] = mapped_column(String(32), nullable=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    execution_time_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_usage_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[Any] = mapped_column(JSONType, nullable=True)
    encrypted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    batch_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    chain_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    root_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    retry_of: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    schedule_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    tags: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: Job ids this one waits for (J7); it is published when all of them completed.
    depends_on: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    #: Position in its chain, from 0 (J6).
    chain_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Set while a global rate limit holds the job back (J10): when it runs again.
    throttled_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The uniqueness lock this job holds until it finishes (J8).
    unique_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: When its latest message entered a broker queue (dispatch, retry, re-queue), never
    #: earlier than the truth: the reconciler calls a message lost only once a message
    #: published after it has left the same list.
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: What rebuilding its message needs beyond the columns (app.kernel.message):
    #: the `celeriac` header, time limits, Celery's retry count and canvas links.
    message: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    #: Set while the job waits in Celeriac's own scheduled set (a delay or backoff too long
    #: for a broker ETA): when it is released to its queue. NULL once released.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Latest progress reported by the job (`self.progress(done, total, message)`): 0-100.
    progress: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress_done: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    progress_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: The concurrency key this job holds a slot of while it runs (at most N per key).
    concurrency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: The Celery group (or chord header) this job belongs to, from the message's `group`.
    group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    #: Timeline lines that are not attempts: recovered outcomes, re-publishes, lost workers.
    notes: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class JobAttempt(db.Model):  # type: ignore[name-defined,misc]
    """One run of a job on a worker: the attempts timeline of the console and reports."""

    __tablename__ = "job_attempts"
    __table_args__ = (Index("ix_attempt_execution", "execution_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("job_executions.id", ondelete="CASCADE"), nullable=False)
    #: Unique per start event, so replaying an event never adds an attempt.
    attempt_key: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="processing")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    runtime_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Lets one flush insert a new execution and its first attempt in the right order.
    execution: Mapped[JobExecution] = relationship(lazy="raise_on_sql")
