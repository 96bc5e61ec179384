"""The task base class a worker needs so Celeriac's prerun checks can keep a job from running.

Celery's `task_prerun` signal cannot stop a task: the handlers in `celeriac.signals` mark
the request instead (`mark_skipped`: the job was cancelled before it started, or a gate
such as a rate limit took it out of this run), and this base class turns the mark into
`Ignore` before the body runs. `app.tracked_task.TrackedTask` builds on it to open and
seal encrypted payloads, which needs the encryption keys and `cryptography`.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.exceptions import Ignore

#: Attribute set on a request whose body must not run.
_SKIP = "celeriac_skip"


def mark_skipped(request: Any) -> None:
    """Keep the job of `request` from running (its reason is recorded by the caller)."""
    setattr(request, _SKIP, True)


def is_skipped(request: Any) -> bool:
    return bool(getattr(request, _SKIP, False))


class CeleriacTask(Task):  # type: ignore[type-arg]
    """Runs the body unless a prerun handler marked the request skipped."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if is_skipped(self.request):
            raise Ignore()
        return super().__call__(*args, **kwargs)
