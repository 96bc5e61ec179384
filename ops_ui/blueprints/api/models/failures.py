"""Failures (API.md "Jobs" failure report, "Monitoring" failures, dead-letter queue actions)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from app.failures.groups import DEFAULT_GROUP_PAGE, MAX_GROUP_PAGE
from ops_ui.blueprints.api.models.base import SHAPE, Answer, Body, EmptyIsAbsent, Instant, Query
from ops_ui.blueprints.api.models.jobs import JobStatus

#: The queue a dead-letter action works on.
QueueName = Annotated[str, SHAPE, Field(min_length=1, examples=["default"])]


class RetryFailedBody(Body):
    """`POST /api/admin/queue/retry`: only `queue`; another key makes the body malformed."""

    model_config = ConfigDict(extra="forbid")
    unknown_field_status: ClassVar[int] = 400

    queue: QueueName


class ClearFailedBody(RetryFailedBody):
    """`POST /api/admin/queue/clear`."""

    older_than: str | None = Field(
        default=None, description="ISO 8601 date or time (UTC without an offset): only jobs failed before it"
    )


class RetriedFailed(Answer):
    retried: int = Field(description="failed jobs queued again, as new executions with retry_of")
    skipped: int = Field(description="failed jobs retried before")


class Cleared(Answer):
    cleared: int


class FailureGroup(Answer):
    """Failures with one root cause: same exception type, normalised message and frames."""

    fingerprint: str
    tenant_id: str
    exception_type: str
    message: str
    last_message: str | None
    frames: list[str]
    job_classes: list[str]
    count: int
    first_seen: Instant
    last_seen: Instant
    sample_job_ids: list[str]


class FailureGroups(Answer):
    items: list[FailureGroup]
    next_cursor: str | None


class FailureGroupsQuery(Query):
    job_class: Annotated[str | None, EmptyIsAbsent] = Field(
        default=None, description="groups in which this class failed"
    )
    since: Annotated[str | None, EmptyIsAbsent] = Field(default=None, description="ISO 8601; groups last seen since")
    limit: int = Field(DEFAULT_GROUP_PAGE, ge=1, le=MAX_GROUP_PAGE)
    cursor: Annotated[str | None, EmptyIsAbsent] = Field(default=None, description="next_cursor of the previous page")


class ReportedException(Answer):
    type: str | None
    message: str | None


class ReportedAttempt(Answer):
    number: int
    status: str
    worker_id: str | None
    started_at: Instant | None
    finished_at: Instant | None
    runtime_ms: int | None
    error: str | None


class FailureReport(Answer):
    """Why a job failed: exception, traceback, attempts timeline, and its failure group."""

    id: str
    job_class: str
    queue: str
    status: JobStatus
    exception: ReportedException
    traceback: str | None
    failed_at: Instant | None
    attempts: list[ReportedAttempt]
    max_attempts: int
    fingerprint: str | None
    similar_failures_count: int
    group: FailureGroup | None
