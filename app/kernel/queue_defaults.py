"""A queue's settings as dispatch reads them: code (`define_queue`), then an admin's edits.

Low on purpose: dispatch (app.kernel.dispatching, app.composition.submit) needs them, and
the edit side (app.control.queue_settings) builds on them. A queue nobody configured has
no row and no code definition: every field is None, and Celeriac's defaults apply.

Precedence of one field: the `queues` row (an admin's edit) when not NULL, else the value
of `define_queue(...)` in code, else None ("not set here"). See docs/queues.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.errors import QueueFull, ValidationError
from app.models import ExecutionStatus, JobExecution
from app.models.queue_settings import QueueSettings

#: The settings a queue may carry in SQL, as the API, CLI and console name them.
FIELDS = ("max_attempts", "retry_after", "timeout", "encrypted", "weight", "max_pending")
#: Bounds (inclusive) of the integer settings; timeout's upper bound is CELERIAC_MAX_TIMEOUT_S.
MAX_ATTEMPTS = 100
#: A day: a longer pause between attempts is a schedule, not a retry (as job definitions).
MAX_RETRY_AFTER_S = 86_400
MAX_WEIGHT = 100
MAX_PENDING = 100_000_000
#: The weight of a queue that sets none, once any queue a worker consumes has one.
DEFAULT_WEIGHT = 1
#: Seconds a refused dispatch is told to wait (the 429's Retry-After).
QUEUE_FULL_RETRY_AFTER_S = 5


@dataclass(frozen=True)
class QueueDefaults:
    """One queue's settings; None: not set here (the job's own or Celeriac's default applies)."""

    name: str
    max_attempts: int | None = None
    retry_after: int | None = None
    timeout: int | None = None
    encrypted: bool | None = None
    weight: int | None = None
    max_pending: int | None = None

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in FIELDS}

    def set_fields(self) -> list[str]:
        return [name for name in FIELDS if getattr(self, name) is not None]


@dataclass(frozen=True)
class CodeQueue:
    """What `define_queue` declared for one queue (rate limit as (limit, per seconds))."""

    defaults: QueueDefaults
    rate_limit: tuple[int, int] | None = None


#: Queues defined in code in this process, by name (filled as task modules are imported).
_code: dict[str, CodeQueue] = {}


def define_queue(name: str, *, rate_limit: Any = None, **values: Any) -> QueueDefaults:
    """Declare a queue's settings in code: `define_queue("emails", max_attempts=5, weight=10)`.

    Values here are defaults: an admin's edit (API, CLI, console) wins until cleared.
    `rate_limit` is "N/SECONDS" or a (limit, per) pair. Called again, the last call wins.

    Raises:
        ValidationError: an unknown setting, a bad queue name or a value out of range.
    """
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationError(f"define_queue: unknown setting(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    check_queue_name(name)
    problems = field_errors(values, max_timeout_s=get_settings().max_timeout_s)
    if problems:
        raise ValidationError(f"define_queue({name!r}): " + "; ".join(problems.values()))
    limit = parse_rate_limit(rate_limit) if rate_limit is not None else None
    defaults = QueueDefaults(name, **values)
    _code[name] = CodeQueue(defaults, limit)
    return defaults


def forget_code_queue(name: str) -> None:
    """Drop a code definition (tests)."""
    _code.pop(name, None)


def code_queue(name: str) -> CodeQueue | None:
    return _code.get(name)


def code_queues() -> dict[str, CodeQueue]:
    """Every queue defined in code in this process."""
    return dict(_code)


def code_rate_limits() -> dict[str, tuple[int, int]]:
    """(limit, per) of each queue whose `define_queue` names a rate limit."""
    return {name: q.rate_limit for name, q in _code.items() if q.rate_limit is not None}


def code_defaults(name: str) -> QueueDefaults:
    """The queue's settings from code only (no SQL): what the test fake queue applies."""
    found = _code.get(name)
    return found.defaults if found is not None else QueueDefaults(name)


def merged(name: str, row: QueueSettings | None) -> QueueDefaults:
    """The row's non-NULL values over the code's."""
    base = code_defaults(name)
    if row is None:
        return base
    edits = {key: getattr(row, key) for key in FIELDS if getattr(row, key) is not None}
    return replace(base, **edits)


def queue_defaults(session: Session, name: str) -> QueueDefaults:
    """`name`'s settings in effect: one primary-key read (the session's identity map first)."""
    return merged(name, session.get(QueueSettings, name))


def count_pending(session: Session, queue: str, up_to: int) -> int:
    """Pending jobs of `queue`, counted up to `up_to` (enough to compare with a bound).

    Uses ix_exec_queue_status and stops at `up_to` rows, so a deep queue costs no more
    than its bound.
    """
    inner = (
        select(JobExecution.id)
        .where(JobExecution.queue == queue, JobExecution.status == ExecutionStatus.PENDING.value)
        .limit(up_to)
        .subquery()
    )
    return int(session.scalar(select(func.count()).select_from(inner)) or 0)


def check_room(session: Session, defaults: QueueDefaults, adding: int = 1) -> None:
    """Refuse a dispatch that would put more than `max_pending` jobs pending on the queue.

    A bound, not a lock: two dispatches at the same instant may both pass the count.

    Raises:
        QueueFull: the queue has no room for `adding` more pending jobs.
    """
    bound = defaults.max_pending
    if bound is None or adding <= 0:
        return
    pending = count_pending(session, defaults.name, bound)
    if pending + adding > bound:
        raise QueueFull(
            f"queue {defaults.name!r} is full: {pending} job(s) pending, max_pending is {bound}; "
            f"try again later",
            retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
        )


def check_queue_name(name: Any) -> None:
    """Raises ValidationError unless `name` is 1-100 letters, digits, '.', '_' or '-'."""
    if not (isinstance(name, str) and 0 < len(name) <= 100 and all(ch.isalnum() or ch in "._-" for ch in name)):
        raise ValidationError("queue must be 1-100 characters of letters, digits, '.', '_' or '-'")


def parse_rate_limit(value: Any) -> tuple[int, int]:
    """A rate limit given as "N/SECONDS", (N, SECONDS) or {"limit": N, "per": SECONDS}.

    Raises:
        ValidationError: any other shape, or numbers below 1.
    """
    if isinstance(value, str):
        parts = value.split("/", 1)
        if len(parts) == 2 and all(part.strip().isdigit() for part in parts):
            value = (int(parts[0]), int(parts[1]))
    elif isinstance(value, dict) and set(value) == {"limit", "per"}:
        value = (value["limit"], value["per"])
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    ):
        return int(value[0]), int(value[1])
    raise ValidationError(f"rate_limit must be 'N/SECONDS' with whole numbers of at least 1, got {value!r}")


def field_errors(values: dict[str, Any], max_timeout_s: int | None) -> dict[str, str]:
    """What is wrong with each given (non-None) value; empty when all are valid.

    `max_timeout_s` is CELERIAC_MAX_TIMEOUT_S (None: not checked here; dispatch checks it).
    """
    bounds = {
        "max_attempts": (1, MAX_ATTEMPTS),
        "retry_after": (0, MAX_RETRY_AFTER_S),
        "timeout": (1, max_timeout_s or 10**9),
        "weight": (1, MAX_WEIGHT),
        "max_pending": (1, MAX_PENDING),
    }
    problems: dict[str, str] = {}
    for key, value in values.items():
        if value is None or key not in FIELDS:
            continue
        if key == "encrypted":
            if not isinstance(value, bool):
                problems[key] = "encrypted must be true or false"
            continue
        low, high = bounds[key]
        if isinstance(value, bool) or not isinstance(value, int):
            problems[key] = f"{key} must be a whole number"
        elif not low <= value <= high:
            problems[key] = f"{key} must be from {low} to {high}, got {value}"
    return problems

