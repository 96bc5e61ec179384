"""What a reconcile run did, and the recovery counters /metrics shows (R1).

Kept apart from the reconciler so the worker's main process (app.recording.worker_loss)
counts its recoveries without importing the reconciler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app import redis_keys

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    """What one run found and did (all zero on a healthy system)."""

    orphans_requeued: int = 0
    orphans_failed: int = 0
    recovered: int = 0
    republished: int = 0
    rechecked: int = 0
    marks_set: int = 0
    #: Lost jobs whose message cannot be rebuilt (published without Celeriac): failed, saying so.
    unrebuildable: int = 0
    #: Jobs waiting for dependencies, held again after Redis lost them.
    reheld: int = 0
    #: Lost jobs marked cancelled (or whose dispatch failed): ended, not published again.
    voided: int = 0
    redis_data_lost: bool = False
    skipped: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def judged(self) -> int:
        """Suspects dealt with so far (their rows changed)."""
        return self.recovered + self.republished + self.rechecked + self.unrebuildable + self.voided

    def counters(self) -> dict[str, int]:
        """What this run did, as counters for /metrics (zero ones left out)."""
        counts = {
            "orphans_requeued": self.orphans_requeued,
            "orphans_failed": self.orphans_failed,
            "recovered_from_result_backend": self.recovered,
            "republished": self.republished,
            "skip_marks_set": self.marks_set,
            "unrebuildable": self.unrebuildable,
            "reheld": self.reheld,
            "voided": self.voided,
            "redis_data_losses": int(self.redis_data_lost),
        }
        return {name: value for name, value in counts.items() if value}

    @property
    def changed_anything(self) -> bool:
        return any(
            (
                self.orphans_requeued,
                self.orphans_failed,
                self.recovered,
                self.republished,
                self.rechecked,
                self.marks_set,
                self.unrebuildable,
                self.reheld,
                self.voided,
                self.redis_data_lost,
            )
        )


def count_recoveries(redis: Any, counts: dict[str, int], last_run: float | None = None) -> None:
    """Add to the recovery counters (best effort: a lost count is no reason to fail)."""
    try:
        pipe = redis.pipeline(transaction=False)
        for name, value in counts.items():
            pipe.hincrby(redis_keys.RECOVERY_STATS, name, value)
        if last_run is not None:
            pipe.hset(redis_keys.RECOVERY_STATS, "reconciled_at", last_run)
        pipe.execute()
    except Exception as exc:  # Redis boundary
        logger.warning("Recovery counters not updated (%s)", exc)
