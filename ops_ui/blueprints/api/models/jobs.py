"""Jobs (API.md "Jobs"): the dispatch body, a job, the job list, retry, cancel, queue stats."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from app.errors import ValidationError
from app.services.jobs import DEFAULT_PAGE, MAX_PAGE
from app.validation import DEFAULT_MAX_DEPTH, check_json
from celeriac.concurrency import MAX_KEY_CHARS
from celeriac.concurrency import MAX_LIMIT as MAX_CONCURRENCY
from ops_ui.blueprints.api.models.base import (
    SHAPE,
    Answer,
    Body,
    EmptyIsAbsent,
    Instant,
    JsonValue,
    Query,
    invalid,
)

#: Every status a job can have (API.md).
JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled", "retrying"]


def _number(minimum: float, description: str) -> WithJsonSchema:
    """A number the dispatch service bounds (some bounds come from settings, hence not here)."""
    return WithJsonSchema({"type": "number", "minimum": minimum, "description": description})


#: Seconds, whole or not; an integer stays an integer.
Seconds = int | float


class DispatchOptions(Body):
    """API.md's dispatch options, plus `expires` and `unique_id`; an unknown option is a 422."""

    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(default=None, description="1-100 letters, digits, '.', '_' or '-'")
    priority: Annotated[int, Field(ge=0, le=9)] | None = None
    delay: (
        Annotated[
            Seconds,
            _number(
                0,
                "seconds; at most CELERIAC_MAX_DELAY_S (default 30 days); a delay over "
                "CELERIAC_SCHEDULED_AFTER_S (60) waits in Celeriac's scheduled set and shows `due_at`",
            ),
        ]
        | None
    ) = None
    max_attempts: Annotated[Seconds, _number(1, "at most 100; a fraction is cut off")] | None = None
    backoff: list[Annotated[Seconds, _number(0, "seconds")]] | None = Field(
        default=None, description="seconds before each retry, each at most CELERIAC_MAX_DELAY_S (hours are fine)"
    )
    timeout: Annotated[Seconds, _number(1, "seconds; at most CELERIAC_MAX_TIMEOUT_S")] | None = None
    tags: list[str] | None = None
    depends_on: list[str] | None = Field(
        default=None, description="job ids that must complete first; a failed or cancelled one cancels this job"
    )
    unique_for: Annotated[Seconds, _number(1, "seconds; a twin dispatch while this job is live answers 200")] | None = (
        None
    )
    unique_id: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="identity for unique_for (default: job class and payload); needs unique_for"
    )
    encrypted: bool | None = Field(default=None, description="payload and result Fernet-encrypted")
    expires: Annotated[Seconds, _number(1, "seconds after its due time when the job is cancelled unrun")] | None = None
    concurrency_key: Annotated[str, Field(min_length=1, max_length=MAX_KEY_CHARS)] | None = Field(
        default=None,
        description="at most concurrency_limit jobs with this key (of your tenant) run at once, across all "
        "workers; the others wait as pending, without using an attempt. Default: the class's own, else the class name",
    )
    concurrency_limit: Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)] | None = Field(
        default=None,
        description="the key's limit from now on (the most recent one set wins; GET /api/limits shows it). "
        "Without it: the key's current limit (1 for a new key)",
    )

    KNOWN: ClassVar[frozenset[str]]

    @field_validator("unique_id")
    @classmethod
    def _unique_id_needs_unique_for(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("unique_for") is None:
            raise invalid("unique_id needs unique_for")
        return value


DispatchOptions.KNOWN = frozenset(DispatchOptions.model_fields)


def _within_depth(payload: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    """A payload nests at most Settings.max_payload_depth levels, as Job.dispatch allows."""
    depth = (info.context or {}).get("max_payload_depth", DEFAULT_MAX_DEPTH)
    try:
        check_json(payload, "payload", depth)
    except ValidationError as exc:
        raise invalid(str(exc)) from exc
    return payload


#: A job's payload: any JSON object, nested at most CELERIAC_MAX_PAYLOAD_DEPTH levels.
Payload = Annotated[dict[str, JsonValue], AfterValidator(_within_depth)]


def _falsy_as_absent(value: object) -> object:
    """`"options": []` or `0` always meant "no options"."""
    return value or None


class DispatchBody(Body):
    """`POST /api/jobs/dispatch`, and each job of a batch or chain."""

    job_class: Annotated[str, SHAPE, Field(min_length=1, examples=["demo.echo"])]
    payload: Annotated[Payload | None, SHAPE] = None
    options: Annotated[DispatchOptions | None, SHAPE, BeforeValidator(_falsy_as_absent)] = None


class Dispatched(Answer):
    id: str
    status: JobStatus
    job_class: str
    queue: str


class Note(Answer):
    """What the recorder or the reconciler found about a job (docs/reliability.md)."""

    at: JsonValue
    text: str | None


class Job(Answer):
    """`GET /api/jobs/{id}`; an encrypted job shows payload, result and errors as "[encrypted]"."""

    id: str
    job_class: str
    queue: str
    priority: int
    status: JobStatus
    attempts: int
    max_attempts: int = Field(
        description="attempts in all, the first included; 0 for a plain Celery task retried without end "
        "(max_retries=None)"
    )
    payload: JsonValue
    result: JsonValue
    error_message: str | None
    exception_type: str | None
    exception_trace: str | None
    worker_id: str | None
    execution_time_ms: int | None
    memory_usage_mb: float | None
    tags: list[str]
    tenant_id: str
    batch_id: str | None
    chain_id: str | None
    chain_step: int | None
    group_id: str | None = Field(
        description="the Celery group the job is a member of (a chord's header is one; its callback is not)"
    )
    parent_id: str | None = Field(
        description="Celery's parent: the job that sent this one (a chain's previous step); for a chord "
        "callback, the group id of the chord's header"
    )
    root_id: str | None = Field(
        description="the first job of the Celery workflow (or the chord header's group id for a chord sent "
        "on its own); null for the first job itself and for a job sent alone"
    )
    schedule_id: str | None = Field(description="the schedule whose fire dispatched the job")
    depends_on: list[str]
    throttled_until: Instant | None
    retry_of: str | None
    eta: Instant | None
    due_at: Instant | None = Field(
        description="set while the job waits in Celeriac's scheduled set (a long delay or retry backoff): when it "
        "is released to its queue; null once released (POST /api/jobs/{id}/run-now releases it at once)"
    )
    created_at: Instant
    started_at: Instant | None
    completed_at: Instant | None
    failed_at: Instant | None
    cancelled_at: Instant | None
    updated_at: Instant | None
    published_at: Instant | None
    progress: int | None = Field(ge=0, le=100, description="0-100 as the job last reported it; 100 once completed")
    progress_message: str | None = Field(description="the message of the job's last progress report")
    progress_done: int | None = Field(description="`done` of the last progress report")
    progress_total: int | None = Field(description="`total` of the last progress report")
    notes: list[Note]


class JobList(Answer):
    items: list[Job]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last")


class JobListQuery(Query):
    status: Annotated[JobStatus | None, EmptyIsAbsent] = None
    queue: Annotated[str | None, EmptyIsAbsent] = None
    job_class: Annotated[str | None, EmptyIsAbsent] = None
    limit: int = Field(DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: Annotated[str | None, EmptyIsAbsent] = Field(default=None, description="next_cursor of the previous page")


class Retried(Answer):
    id: str = Field(description="the run that retries the job: the same id, or a new one")
    status: Literal["pending"]
    retry_of: str


class Cancelled(Answer):
    id: str
    status: JobStatus


class RanNow(Answer):
    """A held job made due now: the recorder's releaser queues it within about a second."""

    id: str
    status: JobStatus
    due_at: Instant


class QueueStats(Answer):
    """A queue's figures; completed and failed count the last hour."""

    queue: str
    pending: int
    delayed: int
    processing: int
    completed: int
    failed: int
    throughput_per_minute: float
    avg_runtime_ms: float | None
    p95_runtime_ms: float | None
    oldest_pending_age_s: float | None
    broker_depth: int
    retried: int
    avg_wait_ms: float | None
    p95_wait_ms: float | None
