"""Celery signal handlers that turn every task's lifecycle into compact events.

Handlers only build a small dict and hand it to the process's `EventBuffer`; nothing
here talks to SQL. Celery swallows exceptions raised by receivers, so each handler
guards itself and logs with the traceback (a lost event is never silent).
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import signals

from celeriac import events as ev
from celeriac import header
from celeriac.buffer import EventBuffer
from celeriac.cancel_cache import CancelCache
from celeriac.priority import from_broker_priority
from celeriac.shape import shape_of_message
from celeriac.task import mark_skipped

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingConfig:
    """What the handlers need from the process's settings (app.config builds it)."""

    #: The Redis client of the event stream and the cancel marks (one per process, fork-safe).
    redis: Callable[[], redis.Redis]
    #: Longest result kept on a success event, in characters.
    max_result_chars: int = 10_000
    #: Events buffered before a flush, and the longest wait before one.
    event_buffer_size: int = 64
    event_flush_ms: int = 20


_config: RecordingConfig | None = None
_buffer: EventBuffer | None = None
_cancel_cache: CancelCache | None = None


def configure(config: RecordingConfig) -> None:
    """Set what the handlers use; every process calls it once, before its first task or publish."""
    global _config, _buffer, _cancel_cache
    _config, _buffer, _cancel_cache = config, None, None


def _current() -> RecordingConfig:
    if _config is None:
        raise RuntimeError("celeriac.signals.configure() was not called in this process")
    return _config


def get_buffer() -> EventBuffer:
    """The process's event buffer, built on first use."""
    global _buffer
    if _buffer is None:
        config = _current()
        _buffer = EventBuffer(config.redis, max_events=config.event_buffer_size, flush_ms=config.event_flush_ms)
    return _buffer


def emit(event: dict[str, Any]) -> None:
    get_buffer().emit(event)


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:  # Celery would only log a bare message; keep the traceback
            logger.exception("Recording handler %s failed; event lost", handler.__name__)

    return wrapper


@dataclass
class _RunningAttempt:
    key: str
    started_monotonic: float
    rss_start: int


#: Checks run before an attempt starts. A gate returns True when it took the job out of
#: this run (re-queued it, say, for a rate limit) and recorded why; the body is skipped
#: and no attempt is counted. Registered by app.composition and app.ratelimit.
Gate = Callable[[str, Any], bool]
_gates: list[Gate] = []


def register_gate(gate: Gate) -> None:
    """Run `gate(task_id, task)` before every task body (once per gate)."""
    if gate not in _gates:
        _gates.append(gate)


#: Attempts running in this process, by task id (prefork: one at a time per child).
_running: dict[str, _RunningAttempt] = {}
#: This process's /proc/self/statm, kept open: a pread at offset 0 re-reads it fresh.
_statm: tuple[int, int] | None = None
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss() -> int:
    """Resident set size in bytes, twice per task: procfs read directly; the peak where there is none."""
    global _statm
    try:
        if _statm is None or _statm[0] != os.getpid():
            # After a fork the inherited descriptor still names the parent's file.
            _statm = (os.getpid(), os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass  # no procfs (macOS): the peak instead, in bytes there
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@_guarded
def on_before_publish(
    sender: str | None = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    headers = headers if headers is not None else {}
    if "id" not in headers:
        return  # protocol 1 or a non-task message
    # The publish time travels with the message: the reconciler orders a queue by it.
    now = time.time()
    headers[header.PUBLISHED_AT] = now
    emit(
        ev.published(
            job_id=headers["id"],
            task=headers.get("task") or sender or "unknown",
            queue=routing_key or "default",
            priority=from_broker_priority((properties or {}).get("priority")),
            payload=ev.payload_from_body(body),
            retries=int(headers.get("retries") or 0),
            eta=headers.get("eta"),
            expires=headers.get("expires"),
            parent_id=headers.get("parent_id"),
            root_id=headers.get("root_id"),
            celeriac=header.read_or_empty(headers),
            shape=shape_of_message(headers, body),
            ts=now,
        )
    )


def _is_cancelled(job_id: str) -> bool:
    """From the process's copy of the cancel marks (see celeriac.cancel_cache)."""
    global _cancel_cache
    if _cancel_cache is None:
        _cancel_cache = CancelCache(_current().redis)
    return _cancel_cache.is_cancelled(job_id)


@_guarded
def on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    request = task.request
    if _is_cancelled(task_id):
        # TrackedTask.__call__ sees this flag and skips the body.
        mark_skipped(request)
        emit(ev.cancelled(task_id, reason="cancelled before it started"))
        return
    for gate in _gates:
        try:
            taken = gate(task_id, task)
        except Exception:  # a broken gate must not stop jobs; run this one and say so
            logger.exception("Prerun gate %s failed; running job %s anyway", gate.__name__, task_id)
            taken = False
        if taken:
            mark_skipped(request)
            return
    attempt = _RunningAttempt(ev.unique_id(), time.monotonic(), _rss())
    _running[task_id] = attempt
    delivery = getattr(request, "delivery_info", None) or {}
    celeriac = header.read(request)
    emit(
        ev.started(
            job_id=task_id,
            attempt_key=attempt.key,
            task=task.name,
            worker=request.hostname,
            retries=int(request.retries or 0),
            queue=delivery.get("routing_key"),
            # Published by a producer without Celeriac: the start is the first we hear.
            payload=None if celeriac is not None else ev.payload_from_args(request.args, request.kwargs),
        )
    )


def _finish(task_id: str) -> tuple[str | None, int | None, float | None]:
    attempt = _running.pop(task_id, None)
    if attempt is None:
        return None, None, None
    runtime_ms = int((time.monotonic() - attempt.started_monotonic) * 1000)
    memory_mb = round(max(0, _rss() - attempt.rss_start) / (1024 * 1024), 3)
    return attempt.key, runtime_ms, memory_mb


@_guarded
def on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    task_id = sender.request.id
    key, runtime_ms, memory_mb = _finish(task_id)
    limit = _current().max_result_chars
    emit(ev.succeeded(task_id, key, runtime_ms, memory_mb, ev.bounded_result(result, limit)))


@_guarded
def on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if task_id is None:
        return
    key, runtime_ms, memory_mb = _finish(task_id)
    event = ev.failed(
        task_id,
        key,
        runtime_ms,
        memory_mb,
        exception,
        traceback=str(einfo.traceback) if einfo is not None else None,
    )
    request = getattr(sender, "request", None)
    # How many attempts came before this one: lets the recorder account for attempts whose
    # start event died with a killed process.
    event["r"] = int(getattr(request, "retries", 0) or 0)
    emit(event)


@_guarded
def on_retry(request: Any = None, reason: Any = None, einfo: Any = None, **_: Any) -> None:
    if request is None or request.id is None:
        return
    key, runtime_ms, memory_mb = _finish(request.id)
    exc = reason if isinstance(reason, BaseException) else None
    message = str(reason) if reason is not None else None
    traceback = str(einfo.traceback) if einfo is not None else None
    emit(ev.retried(request.id, key, runtime_ms, memory_mb, exc, message, traceback))


@_guarded
def on_revoked(request: Any = None, terminated: bool = False, expired: bool = False, **_: Any) -> None:
    if request is None:
        return
    if expired:
        reason = "expired before it ran"
    elif terminated:
        reason = "terminated while running"
    else:
        reason = "revoked"
    _running.pop(request.id, None)
    emit(ev.cancelled(request.id, reason=reason, task=getattr(request, "task_name", None)))


@_guarded
def on_rejected(message: Any = None, exc: BaseException | None = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    reason = f"message rejected: {exc!r}" if exc else "message rejected: not a task message"
    emit(ev.rejected(headers.get("id"), headers.get("task"), reason, message))


@_guarded
def on_unknown(name: str | None = None, id: str | None = None, message: Any = None, **_: Any) -> None:
    reason = f"unknown task {name!r}: no worker that received it has it registered"
    emit(ev.rejected(id, name, reason, message))


@_guarded
def flush_buffer(**_: Any) -> None:
    if _buffer is not None:
        _buffer.flush()


_connected = False


def connect() -> None:
    """Connect every handler once (app.celery_app leaves them off when tracking is off)."""
    global _connected
    if _connected:
        return
    signals.before_task_publish.connect(on_before_publish, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    signals.task_success.connect(on_success, weak=False)
    signals.task_failure.connect(on_failure, weak=False)
    signals.task_retry.connect(on_retry, weak=False)
    signals.task_revoked.connect(on_revoked, weak=False)
    signals.task_rejected.connect(on_rejected, weak=False)
    signals.task_unknown.connect(on_unknown, weak=False)
    signals.worker_process_shutdown.connect(flush_buffer, weak=False)
    signals.worker_shutdown.connect(flush_buffer, weak=False)
    _connected = True
