"""Jobs Celeriac only watches: rows recorded from Celery's task events (CELERIAC_ATTACH).

A project's unchanged workers run them; Celeriac sees them through Celery's events
(app.recording.celery_events), where the arguments are only Celery's `saferepr` text, cut
at 1024 characters. Such rows carry the tag ATTACHED_TAG, which:
- keeps the reconciler off them: no message, heartbeat or result of theirs is Celeriac's
  to judge, and a missed event is not a lost job;
- makes a retry send the task again by name, to the queue it came from, with the
  arguments read back from the repr, and refuse when the repr cannot be read back as it
  was (`resend_payload`).
"""

from __future__ import annotations

import ast
import math
from typing import Any

from celery.utils.saferepr import saferepr
from sqlalchemy import ColumnElement, Text, cast, func, or_

from app.errors import Conflict
from app.kernel.dispatching import TaskInfo
from app.kernel.ports import Registry
from app.models import JobExecution
from celeriac.events import payload_from_args
from celeriac.priority import from_broker_priority

#: The tag of a row recorded from Celery's task events.
ATTACHED_TAG = "celery-events"
#: The queue of a job whose queue the events did not tell (see docs/adopting.md).
UNKNOWN_QUEUE = "unknown"
#: Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize` / `resultrepr_maxsize` default: a
#: repr this long may have been cut, even when it still parses.
CELERY_REPR_MAXSIZE = 1024
#: The payload of a job whose arguments could not be read back: Celery's reprs as they came.
ARGS_REPR, KWARGS_REPR = "args_repr", "kwargs_repr"
#: Deeper than any repr Celery sends (its task_repr_maxlevels is 3 by default).
_LEVELS = 100


class _NotPlain(ValueError):
    """A value JSON cannot carry as it is (a set, bytes, an Ellipsis left by a cut)."""


def _plain(value: Any) -> Any:
    """`value` as JSON holds it (tuples become lists), or _NotPlain."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _NotPlain("not a finite number")
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise _NotPlain("a key that is not a string")
        return {key: _plain(item) for key, item in value.items()}
    raise _NotPlain(type(value).__name__)


def read_repr(text: Any) -> tuple[bool, Any]:
    """(True, value) when Celery's repr `text` reads back to exactly what was sent, as JSON
    values; (False, None) when it may be cut, does not parse, or does not round-trip
    (Celery's repr does not escape quotes or backslashes the way Python reads them)."""
    if not isinstance(text, str) or len(text) >= CELERY_REPR_MAXSIZE:
        return False, None
    try:
        value = ast.literal_eval(text)
        plain = _plain(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None
    if saferepr(value, CELERY_REPR_MAXSIZE, maxlevels=_LEVELS) != text:
        return False, None
    return True, plain


def payload_from_reprs(args_repr: Any, kwargs_repr: Any) -> Any:
    """The payload Celeriac shows: the arguments when both reprs read back, else the reprs."""
    args_ok, args = read_repr(args_repr if args_repr is not None else "()")
    kwargs_ok, kwargs = read_repr(kwargs_repr if kwargs_repr is not None else "{}")
    if args_ok and kwargs_ok and isinstance(args, list) and isinstance(kwargs, dict):
        return payload_from_args(args, kwargs)
    return {ARGS_REPR: args_repr, KWARGS_REPR: kwargs_repr}


def value_from_repr(text: Any) -> Any:
    """A result as readable as it can be: the value when its repr reads back, else the text."""
    ok, value = read_repr(text)
    return value if ok else text


#: The Celeriac priority of a message in a queue's plain Redis list (broker priority 0).
PLAIN_LIST_PRIORITY = from_broker_priority(0)


def is_attached(row: JobExecution) -> bool:
    return ATTACHED_TAG in (row.tags or [])


def is_foreign(row: JobExecution, registry: Registry) -> bool:
    """The row is a task Celeriac has no definition or code for: a project's own, recorded
    by its instrumented workers (retried by name, as those workers know it)."""
    return row.job_definition_id is None and row.job_class != "unknown" and registry.get(row.job_class) is None


def not_attached() -> ColumnElement[bool]:
    """SQL: the row is not one recorded from Celery's events (its tags lack ATTACHED_TAG)."""
    text = func.coalesce(cast(JobExecution.tags, Text), "")
    return or_(JobExecution.tags.is_(None), ~text.contains(f'"{ATTACHED_TAG}"', autoescape=True))


def resend_payload(row: JobExecution, given: dict[str, Any] | None) -> dict[str, Any]:
    """The payload an attached job is sent again with: `given` (an edited retry) or its own.

    Raises:
        Conflict: its task name or queue is not known, or its arguments are only a repr
            that does not read back (edit the payload to retry it).
    """
    if row.job_class == "unknown":
        raise Conflict(f"job {row.id} was seen only after it started: its task name is not known")
    if row.queue == UNKNOWN_QUEUE:
        raise Conflict(
            f"job {row.id}: the queue it came from is not known (its worker consumes several queues"
            " and its producer sends no task-sent events), so it cannot be sent again by name"
        )
    payload = given if given is not None else row.payload
    if not isinstance(payload, dict):
        return {}
    if ARGS_REPR in payload or KWARGS_REPR in payload:
        raise Conflict(
            f"job {row.id} was recorded from Celery's events, which carry its arguments only as a"
            f" repr that is cut or does not read back ({payload.get(ARGS_REPR)!s:.60}); it cannot"
            ' be sent again as it ran. Retry it with an edited payload: {"args": [...], "kwargs": {...}}'
        )
    return payload


class ByNameRegistry:
    """The registry, plus the attached job's task: sent by name, as its own workers know it."""

    def __init__(self, registry: Registry, row: JobExecution) -> None:
        self.registry = registry
        self.info = TaskInfo(name=row.job_class, queue=row.queue, max_attempts=max(1, row.max_attempts))

    def get(self, job_class: str) -> TaskInfo | None:
        found = self.registry.get(job_class)
        return found if found is not None or job_class != self.info.name else self.info
