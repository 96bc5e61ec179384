"""Process-wide access to the hub and the outbox drain, for services and the recorder."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from app.composition.followups import drain_outbox
from app.composition.held_release import ReleasePublisher
from app.composition.hub import Hub
from app.config import Settings
from app.crypto import unseal
from app.kernel.ports import Publisher
from app.kernel.writer import mark_unqueued
from app.models import JobExecution
from app.redis_client import get_redis

logger = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _hub(url: str, pid: int) -> Hub:
    return Hub(get_redis(url))


def get_hub(settings: Settings) -> Hub:
    """The hub for this process (rebuilt after a fork, like the Redis pool)."""
    return _hub(settings.redis_url, os.getpid())


def result_reader(session: Session) -> Any:
    """`result_of(job_id)` for chain steps: the stored result, opened if it was sealed."""

    def result_of(job_id: str) -> Any:
        row = session.get(JobExecution, job_id)
        if row is None:
            return None
        if row.encrypted and isinstance(row.result, str):

            return unseal(row.result)
        return row.result

    return result_of


def publish_released(session: Session, settings: Settings, publisher: Publisher) -> int:
    """Drain the outbox now (dispatch resolved a dependency that had already finished)."""

    hub = get_hub(settings)
    return drain_outbox(
        hub,
        ReleasePublisher(publisher, session, settings, hub.redis),
        result_reader(session),
        lambda job_id, reason: mark_unqueued(session, job_id, reason),
    )
