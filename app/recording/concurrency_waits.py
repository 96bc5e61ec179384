"""What the reconciler does for concurrency limits (celeriac.concurrency).

A job parked for a concurrency slot is `pending` in SQL while its message is in no queue:
it is held in its key's waiting list instead, and so is a waiter promoted to a slot whose
message is on its way. Both are in flight, not lost. After a Redis data loss the waiting
lists are gone with the messages they held: those rows are then in no list either, so the
reconciler finds them as usual and publishes them again (they take a slot or park anew).

Each run also sweeps the slots: a worker that died holding one stops refreshing its
lease, and when no job asks for the key (which would free it too) the sweep frees it and
publishes the waiters it promoted.
"""

from __future__ import annotations

import logging
from typing import Any

from app.broker import celery_app
from app.config import Settings
from celeriac.concurrency import Slots, publish_parked

logger = logging.getLogger(__name__)


def slot_holders(client: Any, settings: Settings) -> set[str]:
    """Sweep expired slots, then the ids of parked jobs and of holders whose lease runs.

    Raises:
        redis.RedisError: Redis is unavailable (the reconcile run is skipped).
    """
    slots = Slots(client)
    promoted = slots.sweep(lease_s=float(settings.monitoring.reap_after_s))
    if promoted:
        logger.info("Reconciler: %d concurrency waiter(s) released from expired slots", len(promoted))
        try:
            publish_parked(celery_app, promoted)
        except Exception as exc:  # they hold their slots until the lease ends; found again then
            logger.warning("Reconciler: promoted waiters not published (%s)", exc)
    return slots.waiting_ids()
