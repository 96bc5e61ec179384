"""The production publisher: `send_task` over broker connections that give up quickly."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from kombu.pools import producers

from app.broker import celery_app
from app.config import get_settings
from app.kernel.dispatching import ResolvedJob
from celeriac.publish import QUICK_RETRY_POLICY, send

#: One reconnect on a broken connection, no more: a dispatch answers within about twice
#: CELERIAC_PUBLISH_TIMEOUT_S when Redis is down.
PUBLISH_RETRY_POLICY = QUICK_RETRY_POLICY


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
    """Publishes through the Celery app, one pooled producer per publish (or per batch)."""

    def publish(self, job: ResolvedJob, producer: Any = None) -> None:
        if producer is None:
            with dispatch_producer() as pooled:
                self._send(job, pooled)
        else:
            self._send(job, producer)

    @staticmethod
    def _send(job: ResolvedJob, producer: Any) -> None:
        send(
            celery_app,
            job.job_class,
            args=job.args,
            kwargs=job.wire_payload(),
            options=job.celery_options(),
            sealed=job.encrypted,
            producer=producer,
            retry_policy=PUBLISH_RETRY_POLICY,
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
