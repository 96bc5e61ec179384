"""`celeriac.bulk`: a bulk retry / cancel / purge by filter, run as a tracked job with progress.

Started only by `POST /api/jobs/bulk`, the console's bulk form or `flask jobs bulk`
(app.services.bulk_jobs signs the payload). Cancelling it stops it between two chunks:
a cancel sets its mark and does not terminate it (app.kernel.system_jobs.COOPERATIVE_CANCEL),
so what it did is kept, audited and reported in its timeline.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from app import redis_keys
from app.backends.current import backends
from app.config import get_settings
from app.db import session_scope
from app.jobs import Job
from app.redis_client import get_redis
from app.services import audit, bulk_jobs
from app.services.bulk_actions import VERBS, BulkOutcome
from celeriac import events as ev
from celeriac import signals as recording

logger = logging.getLogger(__name__)


class _StopRequest:
    """Whether the job was asked to stop: its cancel mark is set.

    A cancel never terminates this job's process (app.kernel.system_jobs.COOPERATIVE_CANCEL):
    a pool child that survived its SIGTERM would leave Celery's pool unable to notice that
    child's later death.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self._redis = get_redis(get_settings().redis_url)

    def __call__(self) -> bool:
        return bool(self._redis.exists(redis_keys.cancelled(self.job_id)))


class Bulk(Job):
    """Retry, cancel or purge every job of the tenant matching a filter, CHUNK at a time."""

    name = bulk_jobs.BULK_JOB
    max_tries = 1
    timeout = get_settings().max_timeout_s

    def handle(self, **payload: Any) -> dict[str, Any]:
        settings = get_settings()
        request = bulk_jobs.signed_request(payload, self.tenant_id, settings.secret_key)
        current = backends()
        used = bulk_jobs.Backends(current.registry, current.publisher, current.canceller, settings)
        outcome = BulkOutcome(request.action)
        verb = VERBS[request.action]

        def report(processed: int, total: int) -> None:
            self.progress(processed, total, f"{verb} {outcome.done:,}, skipped {outcome.skipped:,} of {total:,}")

        stop = _StopRequest(self.job_id)
        with session_scope() as session:
            try:
                bulk_jobs.run(session, request, used, report, stop, outcome)
            except SoftTimeLimitExceeded:
                session.rollback()
                outcome.error = "time limit reached"
            self._audit(session, request, outcome, payload)
        result = {**outcome.as_dict(), "action": request.action, "count": outcome.done}
        if outcome.error == "cancelled":
            # The row is cancelled already; the timeline keeps what was done.
            recording.emit(ev.note(self.job_id, f"Stopped by its cancel: {outcome.message()}"))
        elif outcome.error is not None:
            raise RuntimeError(f"bulk {request.action} stopped early: {outcome.message()}")
        return result

    def _audit(
        self, session: Any, request: bulk_jobs.BulkRequest, outcome: BulkOutcome, payload: dict[str, Any]
    ) -> None:
        if outcome.error is None:
            status = "ok"
        else:
            status = "cancelled" if outcome.error == "cancelled" else "partial"
        audit.record(
            session,
            actor=str(payload.get("actor") or "unknown"),
            action=f"job.bulk_{request.action}",
            tenant_id=request.tenant_id,
            target_type="bulk_job",
            target_id=self.job_id,
            before={"filter": request.filter_dict(), "action": request.action},
            after={**outcome.as_dict(), "count": outcome.done},
            outcome=status,
            reason=payload.get("reason") if isinstance(payload.get("reason"), str) else None,
        )
        session.commit()
        logger.info("Bulk job %s: %s", self.job_id, outcome.message())
