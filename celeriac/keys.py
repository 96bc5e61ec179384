"""The Redis keys a worker process reads and writes (app.redis_keys re-exports them).

Defined here, not in `app`, so a worker built on the `celeriac` package alone finds the
event stream and the cancel marks under the same names as the recorder and the API.
"""

from __future__ import annotations

#: One prefix for everything Celeriac writes, apart from Celery's own queues.
PREFIX = "celeriac:"
#: Stream of compact execution events; the durable hand-off between workers and SQL.
EVENTS_STREAM = PREFIX + "events"
#: How long a cancel mark outlives the cancel: longer than any message can stay queued
#: (the visibility timeout is at most a few hours), so a revoked job never runs later.
CANCEL_MARK_TTL_S = 7 * 24 * 3600
#: Sorted set of cancelled job ids (score: when), what workers' cancel caches read.
CANCELLED_RECENT = PREFIX + "cancelled:recent"
#: Counter bumped by every change of the cancel marks; workers re-read the set when it moves.
CANCELLED_VERSION = PREFIX + "cancelled:version"


def cancelled(job_id: str) -> str:
    """Key marking a job as cancelled; checked by every task before it runs."""
    return f"{PREFIX}cancelled:{job_id}"
