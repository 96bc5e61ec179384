"""A running job's progress reports: checked, then throttled on their way to the event stream.

A job may call `progress` in a tight loop; the recorder needs at most a few rows a second.
So each job sends at most one report per `MIN_INTERVAL_S`; a report that comes sooner is
held, replaced by any later one, and sent when the interval has passed (a timer) or when
the attempt ends (`finish`, called before the outcome event), so the last report always
arrives and arrives before the outcome. A finished report (`done == total`) goes at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac import events as ev

#: Shortest time between two reports of one job reaching the stream, in seconds (4 a second).
MIN_INTERVAL_S = 0.25
#: Longest progress message kept, in characters.
MAX_MESSAGE_CHARS = 500

Emit = Callable[[dict[str, Any]], None]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"progress: {name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"progress: {name} must be a finite number >= 0, got {value!r}")
    return value


def percent_of(done: Any, total: Any) -> int:
    """`done` of `total` as 0-100, rounded down (100 only when done == total).

    Raises:
        TypeError: done or total is not a number.
        ValueError: either is negative or not finite, or done > total.
    """
    done_n, total_n = _number("done", done), _number("total", total)
    if done_n > total_n:
        raise ValueError(f"progress: done ({done!r}) must not exceed total ({total!r})")
    if total_n == 0:
        return 100  # nothing to do is all done
    return min(100, int(done_n * 100 // total_n))


def check_message(message: Any) -> str | None:
    """The message as recorded: None, or a string cut to MAX_MESSAGE_CHARS."""
    if message is None:
        return None
    if not isinstance(message, str):
        raise TypeError(f"progress: message must be a string or None, not {type(message).__name__}")
    return message[:MAX_MESSAGE_CHARS].replace("\x00", "")


@dataclass
class _Pending:
    sent_at: float = -math.inf
    held: dict[str, Any] | None = None
    timer: threading.Timer | None = None


_lock = threading.Lock()
_jobs: dict[str, _Pending] = {}


def report(emit: Emit, job_id: str, attempt_key: str | None, done: Any, total: Any, message: Any = None) -> None:
    """Send (or hold, see the module docstring) a report of job `job_id`.

    Raises:
        TypeError, ValueError: bad arguments (see `percent_of`, `check_message`).
    """
    percent = percent_of(done, total)
    event = ev.progress(
        job_id, attempt_key=attempt_key, done=done, total=total, percent=percent, message=check_message(message)
    )
    now = time.monotonic()
    with _lock:
        pending = _jobs.setdefault(job_id, _Pending())
        wait = pending.sent_at + MIN_INTERVAL_S - now
        if wait > 0 and done != total:
            pending.held = event
            if pending.timer is None:
                pending.timer = threading.Timer(wait, _send_held, (emit, job_id))
                pending.timer.daemon = True
                pending.timer.start()
            return
        pending.held = None  # superseded by this one
        pending.sent_at = now
    emit(event)


def _send_held(emit: Emit, job_id: str) -> None:
    with _lock:
        pending = _jobs.get(job_id)
        if pending is None:
            return
        event, pending.held, pending.timer = pending.held, None, None
        if event is not None:
            pending.sent_at = time.monotonic()
    if event is not None:
        emit(event)


def finish(emit: Emit, job_id: str) -> None:
    """The attempt ended: send the report still held, if any, and forget the job."""
    with _lock:
        pending = _jobs.pop(job_id, None)
    if pending is None:
        return
    if pending.timer is not None:
        pending.timer.cancel()
    if pending.held is not None:
        emit(pending.held)
