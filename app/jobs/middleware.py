"""Job middleware (J11): a stack of wrappers around `handle`, outermost first.

    from app.jobs.middleware import Authorize, Logging, Middleware, Throttle, Timing

    class ImportRows(Job):
        middleware = [Logging(), Timing(), Throttle(10, per=1), Authorize(lambda job, p: p["ok"])]

A middleware is any callable `(job, payload, call_next) -> result`; `call_next(payload)`
runs the rest of the stack and `handle`, and a middleware may change the payload, the
result, or not call it at all. Subclass `Middleware` to override `__call__`, or just the
hooks `before` / `after` / `on_error`, plus `failed` (the job failed for good; called
after the job's own `failed`). Instances are shared by every run of the class in a
process: keep per-run state on the job, not on the middleware.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from app.kernel.retry_policy import Backoff, calculate_retry_delay, should_retry
from app.ratelimit.limits import RateLimit

if TYPE_CHECKING:
    from app.jobs.base import Job

CallNext = Callable[[dict[str, Any]], Any]
_log = logging.getLogger("celeriac.jobs")

__all__ = [
    "Authorize",
    "CallNext",
    "JobMiddleware",
    "Logging",
    "Middleware",
    "NotAuthorized",
    "PermanentJobError",
    "RetryPolicy",
    "Throttle",
    "Timing",
    "run_stack",
]


class JobMiddleware(Protocol):
    """What the stack calls: anything with this signature works, functions included."""

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any: ...


class PermanentJobError(Exception):
    """Raised to fail a job at once: never retried, whatever `retry_on` says."""


class NotAuthorized(PermanentJobError):
    """Raised when an `Authorize` middleware refuses a job."""


class Middleware:
    """Base class with hooks; override `__call__` for full control."""

    def before(self, job: Job, payload: dict[str, Any]) -> None:
        """Before the rest of the stack runs."""

    def after(self, job: Job, payload: dict[str, Any], result: Any) -> None:
        """After the rest of the stack returned `result`."""

    def on_error(self, job: Job, payload: dict[str, Any], exc: BaseException) -> None:
        """The rest of the stack raised `exc` (it is re-raised afterwards; retries may follow)."""

    def failed(self, job: Job, exc: BaseException) -> None:
        """The job failed for good: no attempts left, or a permanent error."""

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        self.before(job, payload)
        try:
            result = call_next(payload)
        except BaseException as exc:
            self.on_error(job, payload, exc)
            raise
        self.after(job, payload, result)
        return result


def run_stack(stack: Sequence[JobMiddleware], job: Job, payload: dict[str, Any]) -> Any:
    """Run `job.handle(**payload)` inside `stack`, its first entry outermost."""

    def call(index: int, current: dict[str, Any]) -> Any:
        if index == len(stack):
            return job.handle(**current)
        return stack[index](job, current, partial(call, index + 1))

    return call(0, payload)


class Logging(Middleware):
    """Logs each attempt's start and outcome (never the payload: it may be encrypted)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or _log
        self.level = level

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        name = type(job).task_name()
        self.logger.log(self.level, "Job %s[%s] attempt %d started", name, job.job_id, job.attempt)
        started = time.perf_counter()
        try:
            result = call_next(payload)
        except Exception as exc:
            ms = (time.perf_counter() - started) * 1000
            self.logger.log(
                self.level, "Job %s[%s] attempt %d raised %s after %.1f ms", name, job.job_id, job.attempt,
                type(exc).__name__, ms,
            )  # fmt: skip
            raise
        ms = (time.perf_counter() - started) * 1000
        self.logger.log(self.level, "Job %s[%s] attempt %d done in %.1f ms", name, job.job_id, job.attempt, ms)
        return result


class Timing(Middleware):
    """Measures the rest of the stack: `job.duration_ms` (also set when it raised)."""

    def __init__(self, log: bool = True) -> None:
        self.log = log

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        started = time.perf_counter()
        try:
            return call_next(payload)
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            setattr(job, "duration_ms", duration_ms)  # noqa: B010  (not a Job attribute for every class)
            if self.log:
                _log.info("Job %s[%s] took %.1f ms", type(job).task_name(), job.job_id, duration_ms)


class Throttle(Middleware):
    """A global rate limit, like `RateLimit(limit, per, key)` in `rate_limits`.

    Enforced by the rate-limit gate before the attempt starts (so a throttled job never
    uses an attempt); where it sits in the stack does not matter, and here it only passes
    the call on.
    """

    def __init__(self, limit: int, per: float, key: str | None = None) -> None:
        self.rate_limit = RateLimit(limit, per, key)

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        return call_next(payload)


class Authorize(Middleware):
    """Runs the job only if `predicate(job, payload)` is true; otherwise fails it for good."""

    def __init__(self, predicate: Callable[[Job, dict[str, Any]], bool], reason: str = "not authorized") -> None:
        self.predicate = predicate
        self.reason = reason

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        if not self.predicate(job, payload):
            raise NotAuthorized(f"{type(job).task_name()} job {job.job_id} refused by Authorize: {self.reason}")
        return call_next(payload)


class RetryPolicy(Middleware):
    """Which failures are retried and after how long, instead of the class's settings.

    Declarative: the job runner asks it once an attempt failed, wherever it sits in the
    stack. It does not change the number of attempts (`max_tries`, or the dispatch's
    `max_attempts`), so the history's max_attempts stays true. A `backoff` given at
    dispatch still wins over the policy's, as over the class's.
    """

    def __init__(
        self,
        backoff: Backoff = None,
        retry_on: Sequence[type[BaseException]] = (),
        dont_retry_on: Sequence[type[BaseException]] = (),
        retry_if: Callable[[Job, BaseException], bool] | None = None,
    ) -> None:
        self.backoff = backoff
        self.retry_on = tuple(retry_on)
        self.dont_retry_on = tuple(dont_retry_on)
        self.retry_if = retry_if

    @classmethod
    def of_job(cls, job_cls: type[Job]) -> RetryPolicy:
        """The policy a class states: its own RetryPolicy middleware, else its attributes."""
        for middleware in job_cls.middleware:
            if isinstance(middleware, RetryPolicy):
                return middleware
        backoff = job_cls.backoff
        if backoff is None and job_cls.retry_after is not None:
            backoff = job_cls.retry_after
        return cls(backoff, job_cls.retry_on, job_cls.dont_retry_on)

    def delay(self, job: Job, exc: BaseException, max_attempts: int, backoff: Backoff, cap_s: int) -> int | None:
        """Seconds before the next attempt, or None when the job has failed for good."""
        never = (*self.dont_retry_on, PermanentJobError)
        if not should_retry(exc, job.attempt, max_attempts, self.retry_on, never):
            return None
        if self.retry_if is not None and not self.retry_if(job, exc):
            return None
        return calculate_retry_delay(backoff if backoff is not None else self.backoff, job.attempt, cap_s=cap_s)

    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        return call_next(payload)
