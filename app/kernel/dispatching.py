"""Dispatch rules shared by code (`Job.dispatch`) and the API: validate, resolve, publish.

Defaults come from the job's definition row (editable by admins), then from the code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.config import HARD_LIMIT_GRACE_S, Settings
from app.crypto import is_sealed, require_keys, seal_payload
from app.errors import ValidationError
from app.models import JobDefinition
from app.validation import check_json
from celeriac import header
from celeriac.priority import DEFAULT_PRIORITY, is_valid_priority, to_broker_priority


@dataclass(frozen=True)
class TaskInfo:
    """What dispatch needs to know about a registered task."""

    name: str
    queue: str = "default"
    priority: int = DEFAULT_PRIORITY
    max_attempts: int = 1
    timeout_s: int | None = None
    encrypted: bool = False
    unique_for: int | None = None
    unique_by: tuple[str, ...] = ()


@dataclass
class DispatchSpec:
    """A dispatch request as the caller gave it; None means "use the default"."""

    job_class: str
    payload: dict[str, Any] = field(default_factory=dict)
    tenant_id: str = "default"
    queue: str | None = None
    priority: int | None = None
    delay_s: float | None = None
    max_attempts: int | None = None
    backoff: list[int] | None = None
    timeout_s: int | None = None
    tags: list[str] | None = None
    retry_of: str | None = None
    job_id: str | None = None
    #: Positional arguments, for plain Celery tasks re-run from history.
    args: list[Any] | None = None
    #: Seconds after dispatch when the job is no longer run (J4); recorded as cancelled.
    expires_s: float | None = None
    #: Job ids that must complete first (J7).
    depends_on: list[str] | None = None
    #: Seconds during which an identical dispatch returns this job instead (J8).
    unique_for: int | None = None
    #: Explicit identity for uniqueness (J8); default: a hash of the payload.
    unique_id: str | None = None
    #: Encrypt payload and result (J9); None: the job class decides.
    encrypted: bool | None = None
    batch_id: str | None = None
    chain_id: str | None = None
    chain_step: int | None = None
    #: The schedule whose tick dispatched this job (S1), recorded as job_executions.schedule_id.
    schedule_id: str | None = None


@dataclass(frozen=True)
class ResolvedJob:
    """A validated dispatch with every default filled in."""

    job_id: str
    job_class: str
    payload: dict[str, Any]
    tenant_id: str
    queue: str
    priority: int
    delay_s: float
    max_attempts: int
    backoff: list[int] | None
    timeout_s: int | None
    tags: list[str]
    retry_of: str | None
    job_definition_id: str | None
    args: list[Any] | None = None
    expires_s: float | None = None
    depends_on: list[str] | None = None
    unique_for: int | None = None
    unique_id: str | None = None
    encrypted: bool = False
    batch_id: str | None = None
    chain_id: str | None = None
    chain_step: int | None = None
    schedule_id: str | None = None

    @property
    def eta(self) -> datetime | None:
        if not self.delay_s:
            return None
        return datetime.now(UTC) + timedelta(seconds=self.delay_s)

    def wire_payload(self) -> dict[str, Any]:
        """The payload as it leaves this process: a sealed envelope when encrypted (J9)."""

        if not self.encrypted or is_sealed(self.payload):
            return self.payload  # a retry of an encrypted job carries its envelope already
        return seal_payload(self.payload)

    def celeriac_header(self) -> dict[str, Any]:
        """The `celeriac` message header (built by celeriac.header)."""

        return header.build(self)

    def celery_options(self) -> dict[str, Any]:
        """Keyword arguments for Celery's `apply_async` / `send_task`."""
        options: dict[str, Any] = {
            "task_id": self.job_id,
            "queue": self.queue,
            "priority": to_broker_priority(self.priority),
            "headers": {"celeriac": self.celeriac_header()},  # header.NAME
        }
        if self.delay_s:
            options["countdown"] = self.delay_s
        if self.expires_s:
            options["expires"] = self.expires_s + self.delay_s
        if self.timeout_s:
            options["soft_time_limit"] = self.timeout_s
            options["time_limit"] = self.timeout_s + HARD_LIMIT_GRACE_S
        return options


def find_definition(session: Session, job_class: str, tenant_id: str | None = None) -> JobDefinition | None:
    """The definition that applies to `tenant_id`: its own override, else the global row.

    One indexed query. `tenant_id=None` reads the global row (code defaults, superadmin edits).
    """
    query = select(JobDefinition).where(JobDefinition.job_class == job_class)
    if tenant_id is None:
        return session.scalar(query.where(JobDefinition.tenant_id.is_(None)))
    query = query.where(or_(JobDefinition.tenant_id == tenant_id, JobDefinition.tenant_id.is_(None)))
    # Overrides first: "tenant_id IS NULL" is false (0) for the tenant's own row.
    return session.scalar(query.order_by(JobDefinition.tenant_id.is_(None)).limit(1))


def _check_number(value: Any, name: str, minimum: float, maximum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"{name} must be a number")
    if value < minimum:
        raise ValidationError(f"{name} must be at least {minimum:g}, got {value}")
    if value > maximum:
        raise ValidationError(f"{name} must be at most {maximum:g}, got {value}")


def _validate(spec: DispatchSpec, settings: Settings) -> None:
    if spec.priority is not None and not is_valid_priority(spec.priority):
        raise ValidationError(f"priority must be an integer from 0 to 9, got {spec.priority!r}")
    if spec.delay_s is not None:
        _check_number(spec.delay_s, "delay", 0, settings.max_delay_s)
    if spec.timeout_s is not None:
        _check_number(spec.timeout_s, "timeout", 1, settings.max_timeout_s)
    if spec.max_attempts is not None:
        _check_number(spec.max_attempts, "max_attempts", 1, 100)
    if spec.backoff is not None:
        for value in spec.backoff:
            _check_number(value, "each backoff value", 0, settings.max_delay_s)
    if spec.expires_s is not None:
        _check_number(spec.expires_s, "expires", 1, 365 * 24 * 3600)
    if spec.unique_for is not None:
        _check_number(spec.unique_for, "unique_for", 1, 30 * 24 * 3600)
    if spec.queue is not None and not _is_queue_name(spec.queue):
        raise ValidationError("queue must be 1-100 characters of letters, digits, '.', '_' or '-'")


def _is_queue_name(name: str) -> bool:
    return 0 < len(name) <= 100 and all(ch.isalnum() or ch in "._-" for ch in name)


def _tags(given: list[str] | None, definition: JobDefinition | None) -> list[str]:
    """The definition's tags (every job of the class carries them), then the dispatch's own."""
    inherited = list(definition.tags or []) if definition is not None else []
    return list(dict.fromkeys([*inherited, *(given or [])]))


def resolve(
    spec: DispatchSpec,
    info: TaskInfo | None,
    definition: JobDefinition | None,
    settings: Settings,
) -> ResolvedJob:
    """Validate `spec` against the task and its definition and fill in defaults.

    Raises:
        ValidationError: unknown job class, inactive definition, or an option out of range.
    """
    if info is None:
        raise ValidationError(f"unknown job class {spec.job_class!r}: no such task is registered")
    # What SQL, JSON or Redis cannot keep as given (NaN, NUL, deep nesting) is refused here,
    # for code as for the API (app.validation).
    check_json(spec.payload, "payload", settings.max_payload_depth)
    if spec.args:
        check_json(spec.args, "args", settings.max_payload_depth)
    if definition is not None and not definition.is_active:
        raise ValidationError(f"job class {spec.job_class!r} is inactive and cannot be dispatched")
    _validate(spec, settings)
    encrypted = spec.encrypted if spec.encrypted is not None else info.encrypted
    if encrypted:

        if spec.args:
            raise ValidationError("positional arguments cannot be encrypted; pass a payload object")
        require_keys()
    queue = spec.queue or (definition.default_queue if definition else info.queue)
    priority = spec.priority
    if priority is None:
        priority = definition.priority if definition else info.priority
    max_attempts = spec.max_attempts or (definition.max_attempts if definition else info.max_attempts)
    timeout_s = spec.timeout_s or (definition.timeout if definition else info.timeout_s)
    return ResolvedJob(
        job_id=spec.job_id or str(uuid.uuid4()),
        job_class=spec.job_class,
        payload=dict(spec.payload),
        tenant_id=spec.tenant_id,
        queue=queue,
        priority=priority,
        delay_s=float(spec.delay_s or 0),
        max_attempts=int(max_attempts),
        backoff=list(spec.backoff) if spec.backoff is not None else None,
        timeout_s=int(timeout_s) if timeout_s else None,
        tags=_tags(spec.tags, definition),
        retry_of=spec.retry_of,
        job_definition_id=definition.id if definition else None,
        args=list(spec.args) if spec.args else None,
        expires_s=float(spec.expires_s) if spec.expires_s else None,
        depends_on=list(dict.fromkeys(spec.depends_on)) if spec.depends_on else None,
        unique_for=int(spec.unique_for) if spec.unique_for else info.unique_for,
        unique_id=spec.unique_id,
        encrypted=encrypted,
        batch_id=spec.batch_id,
        chain_id=spec.chain_id,
        chain_step=spec.chain_step,
        schedule_id=spec.schedule_id,
    )
