"""Celery's task events as Celeriac's own execution events (CELERIAC_ATTACH).

A project's unchanged workers report their tasks only through Celery's events (`-E`, or
turned on by broadcast). `translate` turns one of them into the events Celeriac's signal
handlers would have sent (celeriac.events shapes), so the recorder writes them as it writes
every other: one writer, ordered by time, replays changing nothing. A pure function: what
a translation needs beside the event (the queue the task came from) is passed in.

    task-sent / task-received  -> pub (name, queue, arguments, retries, eta, links)
    task-started               -> pub marking the row, then start (its attempt)
    task-succeeded             -> ok (runtime, result read back from its repr)
    task-failed / task-retried -> fail / retry (exception, traceback)
    task-revoked               -> cancel
    task-rejected              -> reject, or lost when the worker put it back in its queue
    task-cancelled             -> lost (a worker's shutdown put it back in its queue)

Every row these make carries the tag `celery-events` (app.kernel.attached). Event and
attempt ids are made from the Celery event itself (worker, process, Lamport clock), so
the same event received twice (two recorders) is recognised as one.
"""

from __future__ import annotations

import ast
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from app.kernel.attached import ATTACHED_TAG, UNKNOWN_QUEUE, payload_from_reprs, value_from_repr
from celeriac.events import MAX_ERROR_CHARS, MAX_TRACE_CHARS
from celeriac.priority import from_broker_priority

#: Where a job without a priority waits in Redis (broker priority 0), on Celeriac's scale.
UNPRIORITISED = from_broker_priority(0)
#: `Name(arguments)`: an exception's repr as Celery sends it.
_EXCEPTION_REPR = re.compile(r"^([A-Za-z_][\w.]*)\((.*)\)$", re.DOTALL)

Event = Mapping[str, Any]


def translate(event: Event, queue: str | None = None) -> list[dict[str, Any]]:
    """Celeriac's events for Celery task event `event` (none for other kinds).

    `queue`: the queue the task came from when the caller knows it (a `task-sent` names
    its own); unknown, the row's queue is UNKNOWN_QUEUE.
    """
    kind, job_id = event.get("type"), event.get("uuid")
    if not isinstance(kind, str) or not isinstance(job_id, str) or not job_id:
        return []
    translator = _TRANSLATORS.get(kind)
    return translator(event, queue) if translator is not None else []


def event_id(event: Event, suffix: str = "") -> str:
    """The same for every receiver of one Celery event: its sender, process and clock."""
    sender = f"{event.get('hostname')}:{event.get('pid')}:{event.get('clock')}"
    return f"celery:{event.get('type')}:{event.get('uuid')}:{sender}{suffix}"


def attempt_key(event: Event) -> str:
    """The attempt a task-started event began: the same for every receiver, and short enough
    for the attempts table's key column (64; a hostname alone may be longer)."""
    return "celery:" + hashlib.sha256(event_id(event).encode()).hexdigest()[:48]


def _base(kind: str, event: Event, suffix: str = "") -> dict[str, Any]:
    ts = event.get("timestamp")
    return {
        "t": kind,
        "id": event["uuid"],
        "ts": float(ts) if isinstance(ts, (int, float)) else time.time(),
        "eid": event_id(event, suffix),
    }


def _clip(text: Any, limit: int) -> str | None:
    if text is None:
        return None
    whole = str(text)
    return whole if len(whole) <= limit else whole[: limit - 15] + "... [truncated]"


def _published(event: Event, queue: str | None) -> list[dict[str, Any]]:
    retries = int(event.get("retries") or 0)
    root = event.get("root_id")
    published = _base("pub", event)
    if event.get("type") == "task-sent":
        queue = event.get("queue") or event.get("routing_key") or queue
    published.update(
        task=event.get("name") or "unknown",
        q=queue or UNKNOWN_QUEUE,
        pr=UNPRIORITISED,
        pl=payload_from_reprs(event.get("args"), event.get("kwargs")),
        r=retries,
        eta=event.get("eta"),
        exp=event.get("expires"),
        parent=event.get("parent_id"),
        root=root if root != event["uuid"] else None,
        # Celery's events do not say the task's retry limit: the attempts seen so far.
        # "events": the worker's main process sent this, its pool process the starts; the
        # two cross, so `r` must not stand for starts not seen yet (app.kernel.apply).
        c={"tags": [ATTACHED_TAG], "max_attempts": retries + 1, "events": True},
    )
    return [published]


def _started(event: Event, queue: str | None) -> list[dict[str, Any]]:
    started = _base("start", event)
    started.update(ak=attempt_key(event), task=None, w=event.get("hostname"), r=0, q=queue or UNKNOWN_QUEUE)
    # Marks the row even when its task-received was missed (events turned on while the
    # worker held it, or the recorder was down): the reconciler must leave it alone. After
    # the start, which names the queue of a row it creates (a publish without one would
    # say "default").
    mark = _base("pub", event, ":mark")
    # "mark": only the tag; the row's publish time stays the one task-sent/received gave.
    mark["c"] = {"tags": [ATTACHED_TAG], "mark": True}
    return [started, mark]


def _succeeded(event: Event, queue: str | None) -> list[dict[str, Any]]:
    runtime = event.get("runtime")
    ok = _base("ok", event)
    ok.update(
        ak=None,
        rt=int(runtime * 1000) if isinstance(runtime, (int, float)) else None,
        mem=None,
        res=value_from_repr(event.get("result")),
    )
    return [ok]


def error_of(exception_repr: Any) -> tuple[str | None, str | None]:
    """(message, exception type) from Celery's repr of an exception: "ValueError('boom')"
    reads "ValueError: boom", as Celeriac's own failures do."""
    if not isinstance(exception_repr, str) or not exception_repr.strip():
        return None, None
    match = _EXCEPTION_REPR.match(exception_repr.strip())
    if match is None:
        return exception_repr, None
    name, inner = match.group(1).rpartition(".")[2], match.group(2)
    if not inner.strip():
        return name, name
    try:
        arguments = list(ast.literal_eval(f"({inner},)"))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return f"{name}: {inner}", name
    text = str(arguments[0]) if len(arguments) == 1 else ", ".join(map(str, arguments))
    return (f"{name}: {text}" if text else name), name


def _error_event(kind: str) -> Callable[[Event, str | None], list[dict[str, Any]]]:
    def translate_error(event: Event, queue: str | None) -> list[dict[str, Any]]:
        message, exception_type = error_of(event.get("exception"))
        outcome = _base(kind, event)
        outcome.update(
            ak=None,
            rt=None,
            mem=None,
            err=_clip(message, MAX_ERROR_CHARS),
            exc=exception_type,
            tb=_clip(event.get("traceback"), MAX_TRACE_CHARS),
        )
        return [outcome]

    return translate_error


def _revoked(event: Event, queue: str | None) -> list[dict[str, Any]]:
    if event.get("expired"):
        reason = "expired before it ran"
    elif event.get("terminated"):
        signum = event.get("signum")
        reason = f"terminated while running (signal {signum})" if signum else "terminated while running"
    else:
        reason = "revoked"
    cancelled = _base("cancel", event)
    cancelled.update(reason=reason, task=None)
    return [cancelled]


def _back_in_queue(event: Event, reason: str) -> list[dict[str, Any]]:
    lost = _base("lost", event)
    lost.update(reason=reason, n=0, w=event.get("hostname"))
    return [lost]


def _rejected(event: Event, queue: str | None) -> list[dict[str, Any]]:
    if event.get("requeue"):
        return _back_in_queue(event, "rejected by its worker, which put it back in its queue")
    rejected = _base("reject", event)
    rejected.update(task="unknown", q=queue, err="rejected by its worker (not run)", raw=None)
    return [rejected]


def _cancelled(event: Event, queue: str | None) -> list[dict[str, Any]]:
    return _back_in_queue(event, "stopped by its worker's shutdown, which put it back in its queue")


_TRANSLATORS: dict[str, Callable[[Event, str | None], list[dict[str, Any]]]] = {
    "task-sent": _published,
    "task-received": _published,
    "task-started": _started,
    "task-succeeded": _succeeded,
    "task-failed": _error_event("fail"),
    "task-retried": _error_event("retry"),
    "task-revoked": _revoked,
    "task-rejected": _rejected,
    "task-cancelled": _cancelled,
}
