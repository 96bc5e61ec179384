"""The production canceller: a persistent mark in Redis, a revoke through Celery remote control."""

from __future__ import annotations

from typing import Any

from app import redis_keys
from app.kernel import writer
from celeriac.buffer import encode_event


class CeleryCanceller:
    """Cancels through Redis (persistent mark) and Celery remote control (revoke)."""

    def __init__(self, redis_client: Any, control: Any) -> None:
        self.redis = redis_client
        self.control = control

    def mark_cancelled(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        writer.add_cancel_mark(pipe, job_id)
        pipe.execute()

    def clear_mark(self, job_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(redis_keys.cancelled(job_id))
        pipe.zrem(redis_keys.CANCELLED_RECENT, job_id)
        pipe.incr(redis_keys.CANCELLED_VERSION)
        pipe.execute()

    def revoke(self, job_id: str, terminate: bool) -> None:
        self.control.revoke(job_id, terminate=terminate, signal="SIGTERM")

    def announce(self, job_id: str, reason: str) -> None:
        """A held job (dependencies, long delay) is dropped, never published; the cancel event reaches the recorder."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(redis_keys.held_job(job_id))
        pipe.zrem(redis_keys.SCHEDULED, job_id)  # a long-delayed job leaves the scheduled set
        pipe.xadd(redis_keys.EVENTS_STREAM, {"e": encode_event(writer.cancel_event(job_id, reason))})
        pipe.execute()
