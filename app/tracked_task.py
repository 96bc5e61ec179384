"""Base class of every task: skips jobs a prerun gate took out (cancelled, throttled).

The recording itself happens in signal handlers (app.recording.signals), so tasks with
another base class are tracked as well; this class only adds the cancel check's effect.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

from app.config import get_settings


class TrackedTask(Task):  # type: ignore[type-arg]
    #: Wait before re-running a job whose worker process died (task_retry_on_worker_lost).
    default_retry_delay = get_settings().worker_lost_retry_delay_s

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.request, "celeriac_skip", False):
            raise Ignore()
        return super().__call__(*args, **kwargs)
