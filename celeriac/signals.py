"""Celery signal handlers that turn every task's lifecycle into compact events.

Handlers only build a small dict and hand it to the process's `EventBuffer`; nothing
here talks to SQL. Celery swallows exceptions raised by receivers, so each handler
guards itself and logs with the traceback (a lost event is never silent).

Beside what celeriac.events builds, the handlers add: `mr` on `pub` and `start` (a plain
task's `max_retries`, None for no limit; celeriac.retry_limits), `chord` on `pub` (the
chord header whose completion published the job; celeriac.canvas), `parent` / `root` on
`start` (Celery's links, for jobs whose publish was not recorded) and `spent` on `fail`
(Celery's retries ran out). `grp` names a group only for its members.
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
from celery.exceptions import Retry

from celeriac import canvas, concurrency_worker, header
from celeriac import events as ev
from celeriac import progress as _progress
from celeriac.buffer import EventBuffer
from celeriac.cancel_cache import CancelCache
from celeriac.publish_events import add_retry_limit, publish_event
from celeriac.retry_limits import retries_spent
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
    concurrency_worker.configure(config.redis, emit)


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


def emit_many(events: list[dict[str, Any]]) -> None:
    """Several events at once (one lock, one wake-up): a batch's publishes."""
    if events:
        get_buffer().emit_many(events)


def report_progress(job_id: str, done: Any, total: Any, message: Any = None) -> None:
    """A running job's progress, checked and throttled (celeriac.progress), tagged with
    the attempt running here so the recorder can tell a late report of an earlier one.

    Raises:
        TypeError, ValueError: bad arguments; a recording problem is only logged.
    """
    attempt = _running.get(job_id)
    _progress.report(_emit_guarded, job_id, attempt.key if attempt else None, done, total, message)


def _emit_guarded(event: dict[str, Any]) -> None:
    try:
        emit(event)
    except Exception:  # never fail the job for its progress report
        logger.exception("Progress of job %s not recorded", event.get("id"))


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
    celeriac_published_at: float | None = None,
    **_: Any,
) -> None:
    """Stamp the publish time on the message and emit its `pub` event.

    `celeriac_published_at`: the time Celeriac's own publisher already recorded on the
    job's row (app.backends.celery_publisher), so row and message agree on it.
    """
    headers = headers if headers is not None else {}
    if "id" not in headers:
        return  # protocol 1 or a non-task message
    now = celeriac_published_at if celeriac_published_at is not None else time.time()
    emit(publish_event(sender, body, routing_key, headers, properties, now))


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
    event = ev.started(
        job_id=task_id,
        attempt_key=attempt.key,
        task=task.name,
        worker=request.hostname,
        retries=int(request.retries or 0),
        queue=delivery.get("routing_key"),
        # Published by a producer without Celeriac: the start is the first we hear.
        payload=None if celeriac is not None else ev.payload_from_args(request.args, request.kwargs),
        group_id=canvas.member_group(getattr(request, "group", None), getattr(request, "group_index", None)),
    )
    # Celery's own links, for a job whose publish we never heard of (the recorder keeps
    # what a publish said: a chord callback's parent is its header, not this).
    parent, root = getattr(request, "parent_id", None), getattr(request, "root_id", None)
    if parent:
        event["parent"] = parent
    if root and root != task_id:
        event["root"] = root
    add_retry_limit(event, task)
    emit(event)


def _finish(task_id: str) -> tuple[str | None, int | None, float | None]:
    _progress.finish(_emit_guarded, task_id)  # its last report goes before the outcome
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
    if retries_spent(exception):
        event["spent"] = True  # Celery's retries ran out: the attempts made were the limit
    emit(event)


@_guarded
def on_retry(request: Any = None, reason: Any = None, einfo: Any = None, **_: Any) -> None:
    if request is None or request.id is None:
        return
    key, runtime_ms, memory_mb = _finish(request.id)
    if isinstance(reason, Retry) and isinstance(reason.exc, BaseException):
        reason = reason.exc  # a plain task's self.retry / autoretry_for: the error it retries
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


def is_tracking() -> bool:
    """This process records its tasks: configured, with every handler connected."""
    return _connected and _config is not None


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
    # Concurrency limits: the slot gate first (a job it parks takes no rate-limit token),
    # then the handlers that give slots back and keep running holders' leases.
    register_gate(concurrency_worker.gate)
    concurrency_worker.connect()
    _connected = True
