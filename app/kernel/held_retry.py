"""A retry whose backoff is too long for a broker ETA waits in the scheduled set (worker side).

Celery's `retry(countdown=...)` publishes the next attempt at once with an ETA, and a worker
holds it unacknowledged until due: past the visibility timeout it runs twice. So a wait
longer than `CELERIAC_SCHEDULED_AFTER_S` publishes nothing. The worker reports the retry
as Celery would (the `task_retry` signal, so the attempt is closed and the row says
`retrying` with the error) plus a `hold` event with the due time and the next retry count;
the current message is then acknowledged (`Ignore`). The recorder writes `due_at` and only
then adds the job to the set (app.recording.scheduled releases it when due, rebuilt from
the same `retries`). No attempt is lost: if this process dies before its events leave,
its message is not acknowledged and the attempt runs again, as for any lost worker; if it
dies after, a redelivered run starts, which clears `due_at`, so the held copy is dropped.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from celery import signals as celery_signals
from celery.exceptions import Ignore, Retry

from app.config import get_settings
from celeriac import signals


def hold_event(job_id: str, due: float, retries: int) -> dict[str, Any]:
    """The `hold` event: the row waits until `due` (epoch s); its message is rebuilt with `retries`."""
    return {"t": "hold", "id": job_id, "ts": time.time(), "eid": uuid.uuid4().hex, "due": due, "r": retries}


def held_wait(
    task: Any, args: Any, kwargs: Any, eta: datetime | None, countdown: float | None, max_retries: int | None
) -> float | None:
    """Seconds this `retry` call should wait in the scheduled set, or None for Celery's own retry
    (a short wait, no retries left, new arguments, or a run outside a worker)."""
    request = task.request
    if request.called_directly or getattr(request, "is_eager", False) or args is not None or kwargs is not None:
        return None
    limit = task.max_retries if max_retries is None else max_retries
    if limit is not None and int(request.retries or 0) >= limit:
        return None  # Celery raises MaxRetriesExceededError (or the exception)
    if countdown is None and eta is not None:
        countdown = eta.timestamp() - time.time()
    if countdown is None:
        countdown = task.default_retry_delay
    wait = float(countdown or 0)
    return wait if wait > get_settings().scheduled_after_s else None


def hold_retry(task: Any, exc: Any, wait_s: float) -> Ignore:
    """Report the retry, hold its next attempt for `wait_s`, and return the `Ignore` that
    acknowledges the current message without publishing anything."""
    request = task.request
    when: Any = int(wait_s)
    reason = Retry(exc=exc if isinstance(exc, Exception) else None, when=when)
    celery_signals.task_retry.send(sender=task, request=request, reason=reason, einfo=None)
    signals.emit(hold_event(request.id, time.time() + wait_s, int(request.retries or 0) + 1))
    return Ignore()
