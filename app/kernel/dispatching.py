"""Dispatch rules shared by code (`Job.dispatch`) and the API: validate, resolve, publish.

Defaults come from the job's definition row (editable by admins), then from the code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.config import HARD_LIMIT_GRACE_S, Settings
from app.crypto import is_sealed, require_keys, seal_payload
from app.errors import ValidationError
from app.kernel.concurrency_claims import resolve_claim
from app.kernel.queue_defaults import QueueDefaults, code_defaults
from app.models import JobDefinition
from app.validation import check_json
from celeriac import header
from celeriac.priority import DEFAULT_PRIORITY, is_valid_priority, to_broker_priority

if TYPE_CHECKING:
    from typing import TypeAlias

    from app.kernel.dispatch_defaults import DefinitionValues

    #: A job definition as resolve reads it: the row, or this process's copy of it.
    Definition: TypeAlias = JobDefinition | DefinitionValues


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
    #: Options the code states itself ("max_attempts", "timeout", "encrypted"): these win
    #: over the queue's settings; the others are Celeriac's defaults (docs/queues.md).
    declared: frozenset[str] = frozenset()
    #: The job names its own retry delay (backoff, retry_after or a RetryPolicy with backoff).
    has_backoff: bool = False
    #: The class's `concurrency` (limit) and `concurrency_key` (text or payload -> text).
    concurrency: int | None = None
    concurrency_key: Any = None


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
    #: At most `concurrency_limit` jobs with this key run at once (app.kernel.concurrency_claims).
    concurrency_key: str | None = None
    concurrency_limit: int | None = None


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
    #: The concurrency claim the `celeriac` header carries ({"key", "limit", "lease"}).
    concurrency: dict[str, Any] | None = None
    #: Its delay passed CELERIAC_SCHEDULED_AFTER_S at dispatch: it waits in Celeriac's
    #: scheduled set, also when another process releases it later (a chain step).
    scheduled: bool = False

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
        """The `celeriac` message header (built by celeriac.header), built once per job: the
        row, the message and the publish event all carry it (do not change it in place)."""
        built: dict[str, Any] | None = self.__dict__.get("_celeriac_header")
        if built is None:
            built = header.build(self)
            self.__dict__["_celeriac_header"] = built  # a frozen dataclass: a cache, not a field
        return built

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


def check_options(spec: DispatchSpec, settings: Settings) -> None:
    """The option checks `resolve` runs, for options kept to dispatch later (a schedule's).

    Raises:
        ValidationError: an option out of range.
    """
    _validate(spec, settings)


def _is_queue_name(name: str) -> bool:
    return 0 < len(name) <= 100 and all(ch.isalnum() or ch in "._-" for ch in name)


def _tags(given: list[str] | None, definition: Definition | None) -> list[str]:
    """The definition's tags (every job of the class carries them), then the dispatch's own."""
    inherited = list(definition.tags or []) if definition is not None else []
    return list(dict.fromkeys([*inherited, *(given or [])]))


def resolve(
    spec: DispatchSpec,
    info: TaskInfo | None,
    definition: Definition | None,
    settings: Settings,
    queues: Callable[[str], QueueDefaults] = code_defaults,
) -> ResolvedJob:
    """Validate `spec` against the task and its definition and fill in defaults.

    Each option comes from the dispatch, else the job's own (its class, or its definition
    as an admin edited it), else the queue's settings (`queues(name)`), else Celeriac's
    default (`_pick`; docs/queues.md).

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
    queue = spec.queue or (definition.default_queue if definition else info.queue)
    on_queue = queues(queue)
    encrypted = _pick(spec.encrypted, None, info.encrypted, "encrypted" in info.declared, on_queue.encrypted)
    if encrypted:

        if spec.args:
            raise ValidationError("positional arguments cannot be encrypted; pass a payload object")
        require_keys()
    priority = spec.priority
    if priority is None:
        priority = definition.priority if definition else info.priority
    max_attempts = _pick(
        spec.max_attempts,
        _edited(definition.max_attempts if definition else None, info.max_attempts),
        info.max_attempts,
        "max_attempts" in info.declared,
        on_queue.max_attempts,
    )
    timeout_s = _pick(
        spec.timeout_s,
        _edited(definition.timeout if definition else None, synced_timeout(info, settings.max_timeout_s)),
        definition.timeout if definition else info.timeout_s,
        "timeout" in info.declared,
        on_queue.timeout,
    )
    backoff = list(spec.backoff) if spec.backoff is not None else None
    if backoff is None and not info.has_backoff and on_queue.retry_after is not None:
        backoff = [on_queue.retry_after]
    return ResolvedJob(
        job_id=spec.job_id or str(uuid.uuid4()),
        job_class=spec.job_class,
        payload=dict(spec.payload),
        tenant_id=spec.tenant_id,
        queue=queue,
        priority=priority,
        delay_s=float(spec.delay_s or 0),
        scheduled=float(spec.delay_s or 0) > settings.scheduled_after_s,
        max_attempts=int(max_attempts),
        backoff=backoff,
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
        concurrency=resolve_claim(
            spec.concurrency_key,
            spec.concurrency_limit,
            info.concurrency_key,
            info.concurrency,
            job_class=spec.job_class,
            tenant_id=spec.tenant_id,
            payload=spec.payload,
            lease_s=float(settings.monitoring.reap_after_s),
        ),
    )


def synced_timeout(info: TaskInfo, max_timeout_s: int) -> int:
    """The timeout the definitions sync writes for a class (app.services.definitions)."""
    return min(info.timeout_s or SYNCED_TIMEOUT_S, max_timeout_s)


#: The timeout a synced definition gets when its class names none (sync_definitions).
SYNCED_TIMEOUT_S = 300


def _edited(value: Any, synced: Any) -> Any:
    """A definition's value when an admin changed it from what the sync wrote, else None."""
    return value if value is not None and value != synced else None


def _pick(given: Any, edited: Any, own: Any, declared: bool, queue: Any) -> Any:
    """One option by precedence: the dispatch's, an admin's edit of the definition, the value
    the class declares, the queue's setting, then the default (`own`: the definition's or
    the class's value when neither states it)."""
    for value in (given, edited, own if declared else None, queue):
        if value is not None:
            return value
    return own
