"""How many times Celery will retry a plain task, as the worker can tell.

A plain `@app.task` is retried by Celery itself (`self.retry`, `autoretry_for`) up to its
`max_retries` (None: without end); `autoretry_for` uses `retry_kwargs["max_retries"]`
when given. The recorder shows the limit as attempts (`max_retries + 1`). A Celeriac `Job`
decides its own retries from its `celeriac` header (`max_attempts`), so it reports none.

A per-call `self.retry(max_retries=N)` is not visible before it happens; when it ends a
task's retries, `retries_spent` sees so in the failure itself, and the recorder takes the
attempts made as the limit.
"""

from __future__ import annotations

from typing import Any

from celery.app.task import Task
from celery.exceptions import MaxRetriesExceededError

#: Set on the task of a Celeriac `Job` (app.jobs): its limit is its header's `max_attempts`.
_JOB_MARK = "celeriac_job"
_RETRY_CODE = Task.retry.__code__


def declared_max_retries(task: Any) -> tuple[bool, int | None]:
    """(known, max_retries) of `task`: known is False for a Celeriac Job or a non-task.

    A None max_retries means Celery retries it without end.
    """
    if task is None or getattr(task, _JOB_MARK, None) is not None:
        return False, None
    retry_kwargs = getattr(task, "retry_kwargs", None)
    if getattr(task, "autoretry_for", None) and isinstance(retry_kwargs, dict) and "max_retries" in retry_kwargs:
        value = retry_kwargs["max_retries"]
    else:
        value = getattr(task, "max_retries", None)
    if value is None:
        return True, None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return False, None  # not something Celery itself could use either
    return True, value


def retries_spent(exc: BaseException | None) -> bool:
    """Whether `exc` ended a task because its retries ran out.

    Celery's `Task.retry` raises, once past the limit, the task's exception (or
    `MaxRetriesExceededError`) from inside itself: its frame is in the traceback.
    """
    if exc is None:
        return False
    if isinstance(exc, MaxRetriesExceededError):
        return True
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is _RETRY_CODE:
            return True
        tb = tb.tb_next
    return False
