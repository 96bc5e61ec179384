"""The Celery-backed registry and publisher used by dispatch in production."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from kombu.pools import producers

from app.celery_app import celery_app
from app.config import get_settings
from app.crypto import REDACTED, SealedError, unseal
from app.priority import DEFAULT_PRIORITY
from app.services.dispatching import ResolvedJob, TaskInfo


def is_internal_task(name: str) -> bool:
    """Celery's own built-in tasks and Celeriac's machinery (schedule fires) are not user jobs."""
    return name.startswith(("celery.", "celeriac."))


def load_task_modules() -> None:
    """Import every module of `imports` so the registry is complete in this process."""
    celery_app.loader.import_default_modules()


def task_info(task: Any) -> TaskInfo:
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
        )
    max_retries = task.max_retries if task.max_retries is not None else 0
    return TaskInfo(
        name=task.name,
        queue=getattr(task, "queue", None) or "default",
        priority=DEFAULT_PRIORITY,
        max_attempts=max_retries + 1,
        timeout_s=task.soft_time_limit,
    )


class CeleryRegistry:
    def get(self, job_class: str) -> TaskInfo | None:
        if is_internal_task(job_class):
            return None
        task = celery_app.tasks.get(job_class)
        return task_info(task) if task is not None else None

    def names(self) -> list[str]:
        return sorted(name for name in celery_app.tasks if not is_internal_task(name))


def _repr_options(job: ResolvedJob) -> dict[str, Any]:
    """Celery copies the arguments into plaintext headers (argsrepr/kwargsrepr) that reach
    logs, events and Flower; for an encrypted job they must say nothing (J9)."""
    if not job.encrypted:
        return {}
    return {"argsrepr": REDACTED, "kwargsrepr": REDACTED}


#: One reconnect on a broken connection (Redis restarted since it was pooled), no more:
#: a dispatch answers within about twice CELERIAC_PUBLISH_TIMEOUT_S when Redis is down.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


@lru_cache(maxsize=2)
def _dispatch_producers(pid: int) -> Any:
    """Producers over broker connections that give up after CELERIAC_PUBLISH_TIMEOUT_S.

    Only dispatch uses them: a frozen or unreachable Redis answers the caller in seconds
    (503) instead of hanging it, while workers keep their own, patient connections.
    """
    timeout = get_settings().reliability.publish_timeout_s
    connection = celery_app.connection_for_write(
        connect_timeout=timeout,
        transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    )
    return producers[connection]


def dispatch_producer() -> Any:
    """A producer from this process's dispatch pool (a context manager)."""
    return _dispatch_producers(os.getpid()).acquire(block=True, timeout=get_settings().reliability.publish_timeout_s)


class CeleryPublisher:
    def publish(self, job: ResolvedJob, producer: Any = None) -> None:
        if producer is None:
            with dispatch_producer() as pooled:
                self._send(job, pooled)
        else:
            self._send(job, producer)

    @staticmethod
    def _send(job: ResolvedJob, producer: Any) -> None:
        celery_app.send_task(
            job.job_class,
            args=job.args,
            kwargs=job.wire_payload(),
            producer=producer,
            retry_policy=PUBLISH_RETRY_POLICY,
            **_repr_options(job),
            **job.celery_options(),
        )

    def publish_many(self, jobs: Sequence[ResolvedJob]) -> int:
        """Publish in order over one broker connection (batches); returns how many were sent.

        Raises:
            PublishError: the broker failed after `sent` jobs.
        """
        sent = 0
        try:
            with dispatch_producer() as producer:
                for job in jobs:
                    self._send(job, producer)
                    sent += 1
        except Exception as exc:  # broker boundary: the caller records the rest as unqueued
            raise PublishError(sent, exc) from exc
        return sent


class PublishError(Exception):
    """A bulk publish stopped part-way; `sent` jobs reached the broker."""

    def __init__(self, sent: int, cause: BaseException) -> None:
        super().__init__(f"{cause}")
        self.sent = sent


def run_in_process(job: ResolvedJob) -> Any:
    """Run `job` eagerly here, recording it as published and run (dispatch_now)."""
    from app.recording import events, signals

    task = celery_app.tasks[job.job_class]
    # Sealed once: the recorded payload and the one the task opens are the same token.
    wire = job.wire_payload()
    signals.emit(
        events.published(
            job_id=job.job_id,
            task=job.job_class,
            queue=job.queue,
            priority=job.priority,
            payload=wire,
            retries=0,
            eta=None,
            expires=None,
            parent_id=None,
            root_id=None,
            celeriac={**job.celeriac_header(), "in_process": True},
        )
    )
    try:
        result = task.apply(
            kwargs=wire,
            task_id=job.job_id,
            headers={"celeriac": job.celeriac_header()},  # type: ignore[dict-item]
        )
        try:
            value = result.get(propagate=True, disable_sync_subtasks=False)
        except SealedError as exc:
            # An encrypted job's error is sealed for everything downstream; the caller of
            # dispatch_now ran it here and gets its own exception back.
            if exc.original is None:
                raise
            raise exc.original from None
        # The task sealed its result like on a worker; the caller here wants it in clear.
        return unseal(value) if job.encrypted and isinstance(value, str) else value
    finally:
        signals.flush_buffer()


def sync_registry_definitions() -> int:
    """Load every task module and add definition rows for new tasks (J3)."""
    from app.db import session_scope
    from app.services.definitions import sync_definitions

    load_task_modules()
    registry = CeleryRegistry()
    infos = [info for name in registry.names() if (info := registry.get(name)) is not None]
    descriptions = {name: (celery_app.tasks[name].__doc__ or "").strip() or None for name in registry.names()}
    with session_scope() as session:
        return sync_definitions(session, infos, descriptions, get_settings().max_timeout_s)
