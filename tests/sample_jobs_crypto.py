"""Encrypted jobs used only by the J9 tests (loaded by their own worker, on CRYPTO_QUEUE)."""

from __future__ import annotations

from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.jobs import Job
from app.redis_client import get_redis

#: The queue only the encryption tests' worker consumes (it has the keys).
CRYPTO_QUEUE = "crypto"


class SecretEcho(Job):
    """Returns what it was given, so a test can tell the body saw the clear payload.

    With `fail_first`, the first attempt fails, to show a retry re-sends ciphertext only.
    """

    name = "tests.crypto.echo"
    queue = CRYPTO_QUEUE
    encrypted = True
    max_tries = 3
    backoff = [0]

    def handle(self, secret: str, n: int = 1, fail_first: str | None = None, **_: Any) -> dict[str, Any]:
        if fail_first and int(get_redis(get_settings().redis_url).incr(f"tests:crypto:{fail_first}")) == 1:
            raise ValueError("first attempt fails by design")
        return {"echo": secret, "double": n * 2, "attempt": self.attempt}


@celery_app.task(name="tests.crypto.plain")
def plain_echo(secret: str = "", **_: Any) -> dict[str, Any]:
    """A plain Celery task: encrypted only when dispatched with options.encrypted."""
    return {"echo": secret}


@celery_app.task(name="tests.crypto.request_kwargs", bind=True)
def request_kwargs(self: Any, **_: Any) -> dict[str, Any]:
    """What Celery's request holds while the body runs (must stay the sealed envelope)."""
    return dict(self.request.kwargs or {})
