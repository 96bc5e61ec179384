"""Builders for the compact execution events written to the stream.

Every event has `t` (kind), `id` (job id), `ts` (epoch seconds at the source) and `eid`
(unique, so the recorder can tell a replay from a new event). Kinds:

    pub     published: task, queue, priority, payload, retries, eta, tenant and links
            (`grp`: its Celery group, also on `start`)
    start   an attempt began on a worker (attempt key `ak`)
    ok      the attempt succeeded (runtime, memory, bounded result)
    fail    the job failed for good (error, exception type, traceback)
    retry   the attempt failed and the job will run again
    cancel  revoked, expired or cancelled before or while running
    reject  the worker could not run the message (malformed, unknown task)
    lost    the worker process died under the job; its message went back to the queue
    republish  the reconciler published the job again (its message was in no queue)
    recheck    the reconciler will look at the job again later (its publish time moves on)
    note       a line for the job's timeline, nothing else
    progress   the running job reported how far it got (celeriac.progress: validated, throttled)

An outcome recovered from Celery's result backend (the worker's own report was lost)
is an ordinary ok / fail / cancel event with `via` saying where it came from.
"""

from __future__ import annotations

import itertools
import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

from celeriac.sealed import REDACTED, is_sealed
from celeriac.storable import is_storable_number, storable

#: Longest error message and traceback kept, in characters.
MAX_ERROR_CHARS = 2_000
MAX_TRACE_CHARS = 20_000


_ids: tuple[int, str, Iterator[int]] | None = None


def unique_id() -> str:
    """An id unique across processes and hosts (event and attempt keys), without a syscall.

    A random 64-bit prefix per process plus a counter: a uuid4 per event cost more than
    building the event.
    """
    global _ids
    if _ids is None or _ids[0] != os.getpid():
        _ids = (os.getpid(), uuid.uuid4().hex[:16], itertools.count())
    return f"{_ids[1]}{next(_ids[2]):x}"


def _base(kind: str, job_id: str) -> dict[str, Any]:
    return {"t": kind, "id": job_id, "ts": time.time(), "eid": unique_id()}


def _clip(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 15] + "... [truncated]"


def payload_from_args(args: Any, kwargs: Any) -> Any:
    """The payload as Celeriac shows it: keyword arguments, plus positional ones if any."""
    kwargs = dict(kwargs or {})
    args = list(args or [])
    if not args:
        return kwargs
    return {"args": args, "kwargs": kwargs}


def payload_from_body(body: Any) -> Any:
    """Payload from a protocol-2 message body `(args, kwargs, embed)`."""
    if isinstance(body, (list, tuple)) and len(body) >= 2:
        return payload_from_args(body[0], body[1])
    return None


def bounded_result(result: Any, limit: int) -> Any:
    """`result` if its JSON fits in `limit` characters, else a truncated preview; in a form
    SQL can store (an infinity becomes "inf", see celeriac.storable)."""
    if result is None or isinstance(result, (bool, int)) or (isinstance(result, float) and is_storable_number(result)):
        return result  # the common case: nothing to measure
    try:
        encoded = json.dumps(storable(result), default=repr)
    except (TypeError, ValueError):
        encoded = json.dumps(storable(repr(result)))
    if len(encoded) <= limit:
        return json.loads(encoded)
    return {"truncated": True, "preview": encoded[:limit]}


def published(
    *,
    job_id: str,
    task: str,
    queue: str,
    priority: int,
    payload: Any,
    retries: int,
    eta: str | None,
    expires: str | None,
    parent_id: str | None,
    root_id: str | None,
    celeriac: dict[str, Any],
    shape: dict[str, Any] | None = None,
    ts: float | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """`shape`: what rebuilding the message needs (app.kernel.message); `ts`: the
    publish time stamped on the message, so row and message agree on it; `group_id`:
    the Celery group (or chord header) the message belongs to."""
    event = _base("pub", job_id)
    if ts is not None:
        event["ts"] = ts
    if group_id:
        event["grp"] = group_id
    if shape is not None:
        event["m"] = shape
    event.update(
        task=task,
        q=queue,
        pr=priority,
        r=retries,
        eta=eta,
        exp=expires,
        parent=parent_id,
        root=root_id if root_id != job_id else None,
        c=celeriac,
    )
    if celeriac.get("encrypted") and not is_sealed(payload):
        payload = REDACTED  # marked encrypted yet sent in clear: never record it
    event["pl"] = payload
    return event


def started(
    *,
    job_id: str,
    attempt_key: str,
    task: str,
    worker: str | None,
    retries: int,
    queue: str | None,
    payload: Any,
    group_id: str | None = None,
) -> dict[str, Any]:
    event = _base("start", job_id)
    event.update(ak=attempt_key, task=task, w=worker, r=retries, q=queue)
    if payload is not None:
        event["pl"] = payload
    if group_id:
        event["grp"] = group_id  # a producer without Celeriac's signals: its group, from the worker
    return event


def succeeded(
    job_id: str,
    attempt_key: str | None,
    runtime_ms: int | None,
    memory_mb: float | None,
    result: Any,
) -> dict[str, Any]:
    event = _base("ok", job_id)
    event.update(ak=attempt_key, rt=runtime_ms, mem=memory_mb, res=result)
    return event


def exception_type(exc: BaseException | None) -> str | None:
    """The name shown for `exc`: a stand-in (an encrypted job's sealed error) names the original."""
    if exc is None:
        return None
    return str(getattr(exc, "celeriac_type", None) or type(exc).__name__)


def _error_fields(exc: BaseException | None, message: str | None, trace: str | None) -> dict[str, Any]:
    return {
        "err": _clip(message if message is not None else (str(exc) if exc else None), MAX_ERROR_CHARS),
        "exc": exception_type(exc),
        "tb": _clip(trace, MAX_TRACE_CHARS),
    }


def failed(
    job_id: str,
    attempt_key: str | None,
    runtime_ms: int | None,
    memory_mb: float | None,
    exc: BaseException | None,
    traceback: str | None,
) -> dict[str, Any]:
    event = _base("fail", job_id)
    event.update(ak=attempt_key, rt=runtime_ms, mem=memory_mb)
    message = f"{exception_type(exc)}: {exc}" if exc is not None else None
    event.update(_error_fields(exc, message, traceback))
    return event


def retried(
    job_id: str,
    attempt_key: str | None,
    runtime_ms: int | None,
    memory_mb: float | None,
    exc: BaseException | None,
    message: str | None,
    traceback: str | None,
) -> dict[str, Any]:
    event = _base("retry", job_id)
    event.update(ak=attempt_key, rt=runtime_ms, mem=memory_mb)
    if exc is not None:
        message = f"{exception_type(exc)}: {exc}"
    event.update(_error_fields(exc, message, traceback))
    return event


def cancelled(job_id: str, *, reason: str, task: str | None = None) -> dict[str, Any]:
    event = _base("cancel", job_id)
    event.update(reason=reason, task=task)
    return event


def rejected(job_id: str | None, task: str | None, reason: str, message: Any) -> dict[str, Any]:
    """A message the worker could not run. Without an id (malformed), one is made up."""
    event = _base("reject", job_id or str(uuid.uuid4()))
    body = getattr(message, "body", None)
    if isinstance(body, bytes):
        body = body[:2000].decode("utf-8", errors="replace")
    delivery = getattr(message, "delivery_info", None) or {}
    event.update(
        task=task or "unknown",
        q=delivery.get("routing_key"),
        err=_clip(reason, MAX_ERROR_CHARS),
        raw=_clip(str(body) if body is not None else None, 2000),
    )
    return event


def lost(job_id: str, *, reason: str, losses: int, worker: str | None = None) -> dict[str, Any]:
    """The worker process died under the job and its message is back in its queue."""
    event = _base("lost", job_id)
    event.update(reason=reason, n=losses, w=worker)
    return event


def republished(job_id: str, *, reason: str, ts: float | None = None) -> dict[str, Any]:
    """The reconciler published the job again: its message was in no queue (R1)."""
    event = _base("republish", job_id)
    if ts is not None:
        event["ts"] = ts
    event.update(reason=reason)
    return event


def recheck(job_id: str, *, reason: str) -> dict[str, Any]:
    """Judge the job again later: its publish time counts from now."""
    event = _base("recheck", job_id)
    event.update(reason=reason)
    return event


def note(job_id: str, text: str) -> dict[str, Any]:
    event = _base("note", job_id)
    event.update(text=text)
    return event


def progress(
    job_id: str, *, attempt_key: str | None, done: float, total: float, percent: int, message: str | None
) -> dict[str, Any]:
    """How far the attempt `attempt_key` (its start event's) got: `done` of `total`, `percent` 0-100."""
    event = _base("progress", job_id)
    event.update(ak=attempt_key, d=done, n=total, p=percent, msg=message)
    return event


def recovered(event: dict[str, Any], via: str) -> dict[str, Any]:
    """`event` (an outcome) marked as recovered from `via`, not reported by its worker."""
    return {**event, "via": via}
