"""What a worker's main process does when the pool process running a job dies (R1).

A pool child killed under a job (the OOM killer, a SIGKILL, a segfault in a C extension)
is the infrastructure's failure, not the job's. Celery's own handling either fails the
job (`max_tries = 1` jobs fail with WorkerLostError) or retries it through its retry
budget, and it never reports an outcome the child stored just before it died. Here:

1. If the child stored an outcome in the result backend before dying (it had finished),
   that outcome is the truth: it is recorded and the message acknowledged; nothing runs
   again.
2. Otherwise the job goes back to its queue whatever its own retry budget, and its
   timeline says "worker lost" - until it has killed its worker `worker_loss_limit`
   times (default 3: a poison pill, as Sidekiq Pro's super_fetch calls it). Then it
   fails, saying so. A class may ask to fail at the first loss (`on_worker_lost = "fail"`).

All of this runs in the worker's main process (Celery calls `on_failure` there). It costs
one Redis command per lost job and nothing per healthy job.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback  # type: ignore[attr-defined]
from billiard.exceptions import WorkerLostError
from celery import states
from celery.worker.request import Request
from celery.worker.state import task_ready

from app import redis_keys
from app.broker import celery_app
from app.config import Settings, get_settings
from app.recording.recoveries import count_recoveries
from app.redis_client import get_redis
from celeriac import events as ev
from celeriac import signals

logger = logging.getLogger(__name__)

#: Where a recovered outcome came from, as the job's timeline says it.
RESULT_BACKEND = "the result backend"


class LossAwareRequest(Request):
    """Celery's request, with Celeriac's answer to a pool process dying under a job."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        # SystemExit/KeyboardInterrupt: how billiard reports a child that exited (not one
        # we terminated ourselves for a revoke or a cancel).
        ours = getattr(self, "_already_cancelled", False) or getattr(self, "_already_revoked", False)
        lost = isinstance(exc, WorkerLostError) or (isinstance(exc, (SystemExit, KeyboardInterrupt)) and not ours)
        if lost and self.task.acks_late and not self.acknowledged:
            try:
                handle_worker_lost(self, exc)
                return None
            except Exception:  # never worse than Celery's own handling
                logger.exception("Job %s: worker-loss handling failed; Celery's own applies", self.id)
        return super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)


def handle_worker_lost(request: Any, exc: BaseException) -> None:
    """Record the stored outcome, or put the job back, or fail it past the loss limit."""
    task_ready(request)
    meta = stored_outcome(request.task.backend, request.id)
    if meta is not None:
        _record_stored_outcome(request, meta)
        request.acknowledge()
        _count("recovered_in_worker")
        return
    settings = get_settings()
    limit = settings.reliability.worker_loss_limit
    losses = count_loss(request.id)
    policy = worker_lost_policy(request.task.name, settings)
    reason = f"{type(exc).__name__}: {exc}"
    if policy == "fail" or losses >= limit:
        message = loss_failure_message(losses, limit, policy, reason)
        logger.error("Job %s[%s]: %s", request.task_name, request.id, message)
        fail_lost_job(request.task.backend, request.id, message)
        request.acknowledge()
        request.send_event("task-failed", exception=message, traceback="")
        _count("worker_losses_failed")
        return
    logger.warning(
        "Job %s[%s]: its worker process died (%s); back in its queue (loss %d of %d)",
        request.task_name,
        request.id,
        reason,
        losses,
        limit,
    )
    emit_now(ev.lost(request.id, reason=reason, losses=losses, worker=request.hostname))
    request.reject(requeue=True)
    _count("worker_losses_requeued")


def _count(name: str) -> None:

    count_recoveries(get_redis(get_settings().redis_url), {name: 1})


def worker_lost_policy(job_class: str, settings: Any) -> str:
    """"requeue" or "fail": the class's `on_worker_lost`, else CELERIAC_REAP_POLICY."""

    task = celery_app.tasks.get(job_class)
    policy = getattr(getattr(task, "celeriac_job", None), "on_worker_lost", None)
    return str(policy or settings.monitoring.reap_policy)


def emit_now(event: dict[str, Any]) -> None:
    """Emit and flush at once: this process may be the next to die, and losses are rare."""
    signals.emit(event)
    signals.flush_buffer()


def stored_outcome(backend: Any, job_id: str) -> dict[str, Any] | None:
    """The outcome the job's own process stored before it died (SUCCESS or FAILURE), if any."""
    try:
        # One read, no retries: this runs in the worker's main process, which must not wait.
        meta: dict[str, Any] = backend._get_task_meta_for(job_id)
    except Exception as exc:  # the backend is down: no outcome known, the job runs again
        logger.warning("Job %s: result backend not readable (%s)", job_id, exc)
        return None
    return meta if meta.get("status") in (states.SUCCESS, states.FAILURE) else None


def _record_stored_outcome(request: Any, meta: dict[str, Any]) -> None:
    limit = get_settings().max_result_chars
    if meta["status"] == states.SUCCESS:
        event = ev.succeeded(request.id, None, None, None, ev.bounded_result(meta.get("result"), limit))
        request.send_event("task-succeeded", result=str(meta.get("result"))[:200], runtime=None)
    else:
        event = outcome_failure_event(request.id, meta)
    emit_now(ev.recovered(event, RESULT_BACKEND))


def outcome_failure_event(job_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    """A `fail` event from a FAILURE stored in the result backend."""
    result = meta.get("result")
    exc_type = result.get("exc_type") if isinstance(result, dict) else None
    exc_message = result.get("exc_message") if isinstance(result, dict) else result
    if isinstance(exc_message, (list, tuple)):
        exc_message = ", ".join(str(part) for part in exc_message)
    event = ev.failed(job_id, None, None, None, None, meta.get("traceback"))
    event.update(err=f"{exc_type or 'Error'}: {exc_message}"[: ev.MAX_ERROR_CHARS], exc=exc_type)
    return event


def count_loss(job_id: str) -> int:
    """Count one more lost worker for `job_id`; 1 if Redis cannot say (it is down)."""
    key = redis_keys.worker_losses(job_id)
    try:
        pipe = get_redis(get_settings().redis_url).pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, redis_keys.WORKER_LOSSES_TTL_S)
        losses, _ = pipe.execute()
        return int(losses)
    except Exception as exc:  # Redis boundary: the broker is likely down too
        logger.warning("Job %s: worker losses not counted (%s)", job_id, exc)
        return 1


def loss_failure_message(losses: int, limit: int, policy: str, reason: str) -> str:
    if policy == "fail" and losses < limit:
        return f"its worker process died ({reason}); the job is not run again (on_worker_lost = fail)"
    return (
        f"it killed its worker {losses} times ({reason}); not run again "
        f"(CELERIAC_WORKER_LOSS_LIMIT={limit})"
    )


class WorkerLossLimit(Exception):
    """The failure stored for a job its worker processes died under too often."""


def fail_lost_job(backend: Any, job_id: str, message: str) -> None:
    """Record the failure (event, result backend) of a job that is not run again."""
    event = ev.failed(job_id, None, None, None, WorkerLossLimit(message), None)
    event.update(err=message, exc="WorkerLost")
    emit_now(event)
    try:
        backend.mark_as_failure(job_id, WorkerLossLimit(message))
    except Exception as exc:  # clients reading results see it later, or time out
        logger.warning("Job %s: failure not stored in the result backend (%s)", job_id, exc)


def outcome_event(job_id: str, meta: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The ok / fail / cancel event a stored result stands for."""
    status = meta.get("status")
    if status == states.SUCCESS:
        return ev.succeeded(job_id, None, None, None, ev.bounded_result(meta.get("result"), settings.max_result_chars))
    if status == states.REVOKED:
        return ev.cancelled(job_id, reason="revoked")
    return outcome_failure_event(job_id, meta)
