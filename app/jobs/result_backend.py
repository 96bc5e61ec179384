"""Celery's Redis result backend, minus the subscription it makes for every task sent.

Celery's Redis backend SUBSCRIBEs to a task's result channel as the task is sent, in case
the sender calls `.get()` later. A process that dispatches thousands of jobs and never
waits on one (the console, the API, beat, the recorder) piled up subscriptions, and while
Redis was down each dispatch spent up to 20 s retrying that subscription before it even
tried to publish. `AsyncResult.get()` still works: it subscribes when it is called, after
reading the result already stored.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class QuietRedisBackend(RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """Nothing: subscribe when someone waits on the result, not for every send."""
