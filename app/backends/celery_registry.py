"""The production registry: the tasks the Celery app knows, as dispatch needs them."""

from __future__ import annotations

from typing import Any

from app.broker import celery_app
from app.kernel.dispatching import TaskInfo
from celeriac.priority import DEFAULT_PRIORITY

#: A plain task's options that win over its queue's settings when its decorator names them.
_PLAIN_OPTIONS = (("max_retries", "max_attempts"), ("soft_time_limit", "timeout"))


def is_internal_task(name: str) -> bool:
    """Celery's own built-in tasks and Celeriac's machinery (schedule fires) are not user jobs."""
    return name.startswith(("celery.", "celeriac."))


def task_info(task: Any) -> TaskInfo:
    """A Celeriac job's own options; a plain Celery task's retries and limits."""
    job_cls = getattr(task, "celeriac_job", None)
    if job_cls is not None:
        return TaskInfo(
            name=task.name,
            queue=job_cls.queue,
            priority=job_cls.priority,
            max_attempts=job_cls.max_tries,
            timeout_s=job_cls.timeout,
            encrypted=bool(job_cls.encrypted),
            unique_for=job_cls.unique_for,
            unique_by=tuple(job_cls.unique_by),
            concurrency=getattr(job_cls, "concurrency", None),
            concurrency_key=getattr(job_cls, "concurrency_key", None),
            declared=getattr(task, "celeriac_declared", frozenset()),
            has_backoff=bool(getattr(task, "celeriac_has_backoff", False)),
        )
    max_retries = task.max_retries if task.max_retries is not None else 0
    # A plain task's own class holds the options its decorator was given (Celery builds it).
    given = vars(type(task))
    return TaskInfo(
        name=task.name,
        queue=getattr(task, "queue", None) or "default",
        priority=DEFAULT_PRIORITY,
        max_attempts=max_retries + 1,
        timeout_s=task.soft_time_limit,
        declared=frozenset(option for attr, option in _PLAIN_OPTIONS if attr in given),
        has_backoff="default_retry_delay" in given,
    )


class CeleryRegistry:
    """Reads the Celery app's task registry; only modules imported so far are in it."""

    def get(self, job_class: str) -> TaskInfo | None:
        if is_internal_task(job_class):
            return None
        task = celery_app.tasks.get(job_class)
        return task_info(task) if task is not None else None

    def names(self) -> list[str]:
        return sorted(name for name in celery_app.tasks if not is_internal_task(name))
