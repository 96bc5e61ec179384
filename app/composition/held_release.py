"""Released jobs whose delay is too long for a broker ETA wait in Celeriac's scheduled set.

Chain steps after the first, batch and chain callbacks and dependants are released by the
hub into its outbox, and their delay counts from that moment. Published with a countdown
over CELERIAC_SCHEDULED_AFTER_S, a message would outlive the broker's visibility timeout and
run twice, so the drainer (app.composition.followups.drain_outbox) publishes through
`ReleasePublisher` instead: a job with such a delay gets its row written and committed
(app.kernel.scheduled.hold_released: payload with `previous_result`, sealed when encrypted;
`due_at`; no `published_at`), then its entry in the scheduled set; the releaser publishes it
when due. Both happen before the outbox entry leaves the in-flight list, so a drainer that
dies in between does it again on recovery, which changes nothing already done.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.kernel.dispatching import ResolvedJob
from app.kernel.ports import Publisher
from app.kernel.scheduled import ScheduledSet, hold_released, holds


class ReleasePublisher:
    """The outbox's publisher: holds released jobs with a long delay, publishes the others."""

    def __init__(self, publisher: Publisher, session: Session, settings: Settings, redis: Any) -> None:
        self.publisher = publisher
        self.session = session
        self.settings = settings
        self.redis = redis

    def publish(self, job: ResolvedJob) -> None:
        """Raises whatever SQL, Redis or the broker raised (the entry goes back to the outbox)."""
        # Decided at dispatch (the releasing process may read other settings), or here for
        # a job rebuilt from its row after a data loss.
        if not (job.scheduled or holds(job.delay_s, self.settings)):
            self.publisher.publish(job)
            return
        due = hold_released(self.session, job)
        if due is not None:
            ScheduledSet(self.redis).add({job.job_id: due.timestamp()})
