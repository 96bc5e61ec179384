"""What the body of a running task may tell Celeriac: its progress (`celeriac.report_progress`).

For plain Celery tasks of an instrumented app (`celeriac.instrument`); Celeriac's own jobs
call `self.progress` instead. The task need not be bound: the running request is Celery's
`current_task`.
"""

from __future__ import annotations

from typing import Any

from celery import current_task

from celeriac import signals
from celeriac.progress import check_message, percent_of


def report_progress(done: Any, total: Any, message: str | None = None) -> None:
    """Report how far the running task got: `done` of `total`, with an optional message.

    Checked, then throttled to a few reports a second (the last one always arrives, before
    the outcome). Outside a worker run (no running task) only the checks run.

    Raises:
        TypeError, ValueError: done or total not numbers >= 0, done > total, message not a string.
    """
    percent_of(done, total)
    check_message(message)
    request = getattr(current_task, "request", None)
    job_id = getattr(request, "id", None) if request is not None else None
    if job_id and not getattr(request, "called_directly", False):
        signals.report_progress(job_id, done, total, message)
