"""Job bodies used only by tests (loaded by workers through CELERIAC_TASK_MODULES)."""

from __future__ import annotations

import os
import time
from typing import Any

from app.celery_app import celery_app
from app.config import get_settings
from app.jobs import Job, job
from app.redis_client import get_redis


def _redis() -> Any:
    return get_redis(get_settings().redis_url)


class PermanentError(Exception):
    """Never retried by RetryingJob."""


class RetryingJob(Job):
    """Fails `failures` times (counted in Redis under `key`), then returns the attempt."""

    name = "tests.retrying"
    max_tries = 3
    backoff = [0, 1]
    dont_retry_on = (PermanentError,)

    def handle(self, key: str, failures: int = 1, permanent: bool = False, **_: Any) -> int:
        seen = int(_redis().incr(f"tests:retrying:{key}"))
        if permanent:
            raise PermanentError(f"permanent failure for {key}")
        if seen <= failures:
            raise ValueError(f"failure {seen} for {key}")
        return self.attempt

    def failed(self, exc: BaseException) -> None:
        _redis().set(f"tests:failed-hook:{self.job_id}", f"{type(exc).__name__}: {exc}")


class MarkerJob(Job):
    """Records that it ran (and in which process), then sleeps `seconds`."""

    name = "tests.marker"
    max_tries = 3

    def handle(self, key: str, seconds: float = 0, **_: Any) -> str:
        client = _redis()
        runs = int(client.incr(f"tests:marker:{key}:runs"))
        client.set(f"tests:marker:{key}:pid", os.getpid())
        if runs == 1:
            time.sleep(float(seconds))
        return f"run {runs}"


@job("tests.decorated", queue="default", max_tries=2)
def decorated(x: int = 1, **_: Any) -> int:
    """A job written as a function."""
    return x * 2


@celery_app.task(name="tests.plain_sleep")
def plain_sleep(seconds: float = 0.1) -> float:
    time.sleep(seconds)
    return seconds


class PoisonJob(Job):
    """Kills the worker process that runs it, every time."""

    name = "tests.poison"
    max_tries = 2

    def handle(self, **_: Any) -> None:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


class DiesOnce(Job):
    """SIGKILLs its own process on its first run (counted in Redis under `key`), then succeeds.

    `max_tries = 1`: a process killed under a job is the infrastructure's failure, so the job
    must run again whatever its own retry budget (R1).
    """

    name = "tests.dies_once"
    max_tries = 1

    def handle(self, key: str, **_: Any) -> str:
        import signal

        runs = int(_redis().incr(f"tests:dies-once:{key}"))
        if runs == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return f"run {runs}"


class _KillAfterReturn(celery_app.Task):  # type: ignore[name-defined,misc]
    """SIGKILLs the pool process once the task's result is stored, before the worker's
    main process hears of it: the worst moment for history (R1)."""

    def after_return(self, *args: Any, **kwargs: Any) -> None:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


@celery_app.task(name="tests.dies_after_success", base=_KillAfterReturn, bind=True)
def dies_after_success(self: Any, key: str) -> str:
    _redis().incr(f"tests:dies-after-success:{key}")
    return f"done {key}"


@celery_app.task(name="tests.counted")
def counted(key: str, seconds: float = 0) -> str:
    """Counts its runs under `key` (an independent record of what really ran)."""
    runs = int(_redis().incr(f"tests:counted:{key}"))
    time.sleep(float(seconds))
    return f"run {runs}"


class DiesNeverAgain(Job):
    """SIGKILLs its own process; must never run twice (`on_worker_lost = "fail"`)."""

    name = "tests.dies_never_again"
    max_tries = 3
    on_worker_lost = "fail"

    def handle(self, key: str, **_: Any) -> None:
        import signal

        _redis().incr(f"tests:dies-never-again:{key}")
        os.kill(os.getpid(), signal.SIGKILL)


@celery_app.task(name="tests.plain_progress", bind=True)
def plain_progress(self: Any, steps: int = 3) -> int:
    """A plain Celery task (not a Job) reporting progress through `self.progress`."""
    for step in range(1, steps + 1):
        self.progress(step, steps, f"plain {step}")
    return steps


class PlainFlaky(Exception):
    """Raised by the plain retrying tasks below."""


@celery_app.task(name="tests.plain_autoretry", autoretry_for=(PlainFlaky,), max_retries=3, retry_backoff=False)
def plain_autoretry(key: str, failures: int = 99) -> int:
    """Plain Celery autoretry: fails its first `failures` runs (counted under `key`)."""
    runs = int(_redis().incr(f"tests:plain-autoretry:{key}"))
    if runs <= failures:
        raise PlainFlaky(f"run {runs} of {key}")
    return runs


@celery_app.task(name="tests.plain_self_retry", bind=True, max_retries=2)
def plain_self_retry(self: Any, key: str, failures: int = 99, max_retries: int | None = None) -> int:
    """Plain `self.retry` (optionally with a per-call `max_retries`): fails its first `failures` runs."""
    runs = int(_redis().incr(f"tests:plain-self-retry:{key}"))
    if runs <= failures:
        try:
            raise PlainFlaky(f"run {runs} of {key}")
        except PlainFlaky as exc:
            options = {} if max_retries is None else {"max_retries": max_retries}
            raise self.retry(exc=exc, countdown=0, **options) from exc
    return runs


@celery_app.task(name="tests.plain_retry_forever", bind=True, max_retries=None)
def plain_retry_forever(self: Any, key: str, failures: int = 2) -> int:
    """`max_retries=None`: Celery retries it without end; succeeds after `failures` runs."""
    runs = int(_redis().incr(f"tests:plain-forever:{key}"))
    if runs <= failures:
        raise self.retry(countdown=0)
    return runs


@celery_app.task(name="tests.plain_total")
def plain_total(values: list[float]) -> float:
    """A chord callback: the sum of the header's results."""
    return sum(values)
