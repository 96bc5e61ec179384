"""Encrypted jobs that fail with their payload in the message (J9 sealed errors).

Loaded by the encryption tests' worker (on CRYPTO_QUEUE) and imported by unit tests.
"""

from __future__ import annotations

from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.crypto import seal
from app.jobs import Job
from app.redis_client import get_redis
from tests.sample_jobs_crypto import CRYPTO_QUEUE

#: Where SealedFailure's failed() hook leaves what it was given (sealed), by job id.
HOOK_KEY = "tests:sealed:hook:{job_id}"


class SealedFailure(Job):
    """Fails every attempt quoting its payload (chained to a cause quoting it too); retried once."""

    name = "tests.sealed.fail"
    queue = CRYPTO_QUEUE
    encrypted = True
    max_tries = 2
    backoff = [0]

    def handle(self, secret: str, **_: Any) -> None:
        try:
            raise KeyError(f"no account for {secret}")
        except KeyError as cause:
            raise ValueError(f"card {secret} declined") from cause

    def failed(self, exc: BaseException) -> None:
        """Keeps the exception it got, sealed, so a test can tell it was the original."""
        seen = seal({"type": type(exc).__name__, "message": str(exc)})
        get_redis(get_settings().redis_url).set(HOOK_KEY.format(job_id=self.job_id), seen, ex=600)


@celery_app.task(
    name="tests.sealed.autoretry",
    autoretry_for=(ValueError,),
    max_retries=1,
    default_retry_delay=0,
)
def sealed_autoretry(secret: str = "", **_: Any) -> None:
    """A plain task with Celery's autoretry: its Retry carries the original exception."""
    raise ValueError(f"token {secret} refused")


class SealedHookFails(Job):
    """Fails for good at once; its failed() hook fails too, quoting the job's error."""

    name = "tests.sealed.hook_fails"
    queue = CRYPTO_QUEUE
    encrypted = True
    max_tries = 1

    def handle(self, secret: str, **_: Any) -> None:
        raise ValueError(f"card {secret} declined")

    def failed(self, exc: BaseException) -> None:
        raise RuntimeError(f"hook could not report: {exc}")
