"""The `Job` base class and `@job` decorator (J1), with fluent dispatch (J2).

A subclass registers itself as a Celery task when it is defined:

    class SendWelcomeEmail(Job):
        queue = "emails"; max_tries = 3; backoff = [30, 120, 300]; timeout = 120
        def handle(self, user_id: int) -> None: ...
        def failed(self, exc: BaseException) -> None: ...

    SendWelcomeEmail.dispatch(user_id=7)
    SendWelcomeEmail.on_queue("high").delay(60).with_priority(9).dispatch(user_id=7)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar

from celery.exceptions import Ignore, Reject, Retry

from app.celery_app import celery_app
from app.config import HARD_LIMIT_GRACE_S, get_settings
from app.crypto import is_sealed
from app.jobs.dispatch import JobCall, PendingDispatch
from app.jobs.middleware import PermanentJobError, RetryPolicy, run_stack
from app.kernel.concurrency_claims import check_key, check_limit
from app.kernel.retry_policy import Backoff
from app.ratelimit.limits import REFUSAL_ATTR
from app.tracked_task import report_progress, stand_in_for
from celeriac import header as message_header
from celeriac.priority import DEFAULT_PRIORITY

logger = logging.getLogger(__name__)

#: Exceptions Celery uses for control flow; never treated as a job failure.
_CONTROL_FLOW = (Ignore, Reject, Retry)


class Job:
    """Base class of Celeriac jobs. Override `handle`; optionally `failed`."""

    #: Stable task name; defaults to "<module>.<ClassName>".
    name: ClassVar[str | None] = None
    queue: ClassVar[str] = "default"
    #: 0 (lowest) to 9 (highest) within the queue.
    priority: ClassVar[int] = DEFAULT_PRIORITY
    #: Attempts in all, the first included.
    max_tries: ClassVar[int] = 3
    #: Seconds between attempts: a list (last value repeats), a number, or "exponential".
    backoff: ClassVar[Backoff] = None
    #: Fixed wait before a retry when `backoff` is None; None means exponential backoff.
    retry_after: ClassVar[int | None] = None
    #: Soft time limit in seconds (SoftTimeLimitExceeded inside `handle`); the hard
    #: limit follows HARD_LIMIT_GRACE_S later. None: the global default.
    timeout: ClassVar[int | None] = None
    #: Retry only on these exceptions (empty: on any).
    retry_on: ClassVar[Sequence[type[BaseException]]] = ()
    #: Never retry on these, even if `retry_on` would.
    dont_retry_on: ClassVar[Sequence[type[BaseException]]] = ()
    tags: ClassVar[Sequence[str]] = ()
    description: ClassVar[str | None] = None
    #: Global limits that hold across every worker (J10): `[RateLimit(100, per=3600)]`.
    rate_limits: ClassVar[Sequence[Any]] = ()
    #: Stack around `handle`, outermost first (J11): `[Logging(), Timing()]`.
    middleware: ClassVar[Sequence[Any]] = ()
    #: Payload and result Fernet-encrypted in the broker and in SQL (J9).
    encrypted: ClassVar[bool] = False
    #: Seconds a duplicate dispatch returns the existing job instead of queuing (J8); None: off.
    unique_for: ClassVar[int | None] = None
    #: Payload keys that make two dispatches the same job (J8); empty: the whole payload.
    unique_by: ClassVar[Sequence[str]] = ()
    #: When the worker process running it dies (SIGKILL, OOM): "requeue" runs it again, whatever
    #: `max_tries`, up to CELERIAC_WORKER_LOSS_LIMIT losses; "fail" fails it at once (a job that
    #: must never run twice). None: CELERIAC_REAP_POLICY (default "requeue"). See docs/reliability.md.
    on_worker_lost: ClassVar[str | None] = None
    #: At most this many jobs with the same `concurrency_key` run at once, across every
    #: worker; the others wait, without using an attempt (docs/jobs.md "Concurrency limits").
    concurrency: ClassVar[int | None] = None
    #: The key: text, or a function of the payload (`lambda p: f"user:{p['user_id']}"`).
    #: None with `concurrency` set: the class name (no two instances overlap).
    concurrency_key: ClassVar[str | Callable[..., str] | None] = None
    #: The Celery task this class registered.
    task: ClassVar[Any]

    #: Set on each instance before `handle` runs.
    job_id: str
    attempt: int
    tenant_id: str

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        if cls.handle is Job.handle:
            raise TypeError(f"{cls.__name__} must define handle()")
        if cls.on_worker_lost not in (None, "requeue", "fail"):
            raise ValueError(f"{cls.__name__}.on_worker_lost must be 'requeue', 'fail' or None")
        if cls.concurrency is not None:
            check_limit(cls.concurrency, f"{cls.__name__}.concurrency")
        if isinstance(cls.concurrency_key, str):
            check_key(cls.concurrency_key, f"{cls.__name__}.concurrency_key")
        elif cls.concurrency_key is not None and not callable(cls.concurrency_key):
            raise TypeError(f"{cls.__name__}.concurrency_key must be a string or a function of the payload")
        cls.task = _register(cls)

    def __init__(self, **payload: Any) -> None:
        #: `ImportRow(row=1)` describes one job for `batch([...])` or `chain([...])`.
        self.payload = payload

    def to_call(self) -> JobCall:
        return JobCall(self.task_name(), dict(self.payload))

    def handle(self, **payload: Any) -> Any:
        raise NotImplementedError

    def failed(self, exc: BaseException) -> None:
        """Called once when the job has failed for good (no attempts left)."""

    def progress(self, done: float, total: float, message: str | None = None) -> None:
        """Report from `handle` how far it got: `done` of `total`, with an optional message.

        Shown live in `GET /api/jobs/{id}` and on the job page; at most 4 reports a second
        reach the recorder, the last always (docs/jobs.md "Progress").

        Raises:
            TypeError, ValueError: done or total not numbers >= 0, done > total, message not a string.
        """
        report_progress(self.task.request, done, total, message)

    # -- dispatch ------------------------------------------------------------------
    @classmethod
    def task_name(cls) -> str:
        return cls.name or f"{cls.__module__}.{cls.__name__}"

    @classmethod
    def pending(cls) -> PendingDispatch:
        return PendingDispatch(cls.task_name())

    @classmethod
    def dispatch(cls, **payload: Any) -> str:
        """Queue the job; returns its id."""
        return cls.pending().dispatch(**payload)

    @classmethod
    def dispatch_many(cls, payloads: Iterable[Mapping[str, Any]], **options: Any) -> list[str]:
        """Queue one job per payload, with the same options (the API's names: queue, priority,
        delay, tags...); their ids, in order. One insert, one commit, one pipelined publish."""
        return cls.pending().with_options(**options).dispatch_many(payloads)

    @classmethod
    def dispatch_if(cls, condition: bool, **payload: Any) -> str | None:
        return cls.dispatch(**payload) if condition else None

    @classmethod
    def dispatch_unless(cls, condition: bool, **payload: Any) -> str | None:
        return None if condition else cls.dispatch(**payload)

    @classmethod
    def dispatch_now(cls, **payload: Any) -> Any:
        """Run in this process, now, and record the execution like any other."""
        return cls.pending().dispatch_now(**payload)

    @classmethod
    def on_queue(cls, queue: str) -> PendingDispatch:
        return cls.pending().on_queue(queue)

    @classmethod
    def delay(cls, seconds: float) -> PendingDispatch:
        return cls.pending().delay(seconds)

    @classmethod
    def with_priority(cls, priority: int) -> PendingDispatch:
        return cls.pending().with_priority(priority)

    @classmethod
    def for_tenant(cls, tenant_id: str) -> PendingDispatch:
        return cls.pending().for_tenant(tenant_id)

    @classmethod
    def with_tags(cls, *tags: str) -> PendingDispatch:
        return cls.pending().with_tags(*tags)

    @classmethod
    def after(cls, *job_ids: str) -> PendingDispatch:
        """Dispatch once every one of `job_ids` completed (J7)."""
        return cls.pending().after(*job_ids)

    @classmethod
    def expires(cls, seconds: float) -> PendingDispatch:
        return cls.pending().expires(seconds)


def _run_job(job_cls: type[Job], task: Any, payload: dict[str, Any]) -> Any:
    """One attempt: `handle` inside the class's middleware, then the retry decision."""
    header = message_header.read_or_empty(task.request)
    instance = job_cls()
    instance.job_id = task.request.id
    instance.attempt = int(task.request.retries or 0) + 1
    instance.tenant_id = header.get("tenant") or get_settings().default_tenant
    try:
        refusal = getattr(task.request, REFUSAL_ATTR, None)
        if refusal is not None:
            # The rate-limit gate could not evaluate this job's limits (bad key template).
            raise PermanentJobError(f"rate limit: {refusal}") from refusal
        return run_stack(job_cls.middleware, instance, payload)
    except _CONTROL_FLOW:
        raise
    except Exception as exc:
        # Encrypted (J9): Celery must only ever see a stand-in for the exception.
        sealed = bool(header.get("encrypted")) or is_sealed(getattr(task.request, "kwargs", None))
        max_attempts = int(header.get("max_attempts") or job_cls.max_tries)
        cap_s = get_settings().max_delay_s
        delay = RetryPolicy.of_job(job_cls).delay(instance, exc, max_attempts, header.get("backoff"), cap_s)
        if delay is None:
            _call_failed_hook(instance, exc, sealed)  # the original: the job may see its own data
            raise
        logger.info(
            "Job %s: attempt %d/%d failed, retry in %ss",
            instance.job_id,
            instance.attempt,
            max_attempts,
            delay,
        )
        if not sealed:
            raise task.retry(exc=exc, countdown=delay, max_retries=max_attempts - 1) from exc
        retry = task.retry(exc=stand_in_for(exc), countdown=delay, max_retries=max_attempts - 1, throw=False)
    # Raised outside the handler, so no chained traceback (Celery's RETRY state, its log line,
    # the task-retried event) can print the original.
    raise retry from None


def _call_failed_hook(instance: Job, exc: BaseException, sealed: bool = False) -> None:
    """The job's `failed`, then each middleware's `failed` hook; their errors are only logged.

    An encrypted job's hook error is logged by type only: its message and its traceback
    (which chains `exc`) may quote the payload.
    """
    hooks: list[Callable[..., Any]] = [instance.failed]
    for middleware in type(instance).middleware:
        hook = getattr(middleware, "failed", None)
        if callable(hook):
            hooks.append(partial(hook, instance))
    for hook in hooks:
        try:
            hook(exc)
        except Exception as hook_error:  # the job's own failure stands; the hook's error is logged
            if sealed:
                logger.error("Job %s: failed() hook raised %s", instance.job_id, type(hook_error).__name__)
            else:
                logger.exception("Job %s: failed() hook raised", instance.job_id)


def _register(job_cls: type[Job]) -> Any:
    def run(task: Any, *args: Any, **payload: Any) -> Any:
        if args:
            raise TypeError(f"{job_cls.__name__} takes keyword arguments only")
        return _run_job(job_cls, task, payload)

    run.__name__ = job_cls.__name__
    run.__qualname__ = job_cls.__qualname__
    run.__module__ = job_cls.__module__
    run.__doc__ = job_cls.__doc__
    options: dict[str, Any] = {
        "name": job_cls.task_name(),
        "bind": True,
        "typing": False,
        "max_retries": max(0, job_cls.max_tries - 1),
        "queue": job_cls.queue,
    }
    max_timeout_s = get_settings().max_timeout_s
    if job_cls.timeout and job_cls.timeout > max_timeout_s:
        # A longer run would outlive the broker's visibility timeout and run twice.
        raise ValueError(
            f"{job_cls.__name__}.timeout is {job_cls.timeout}s; the most allowed is {max_timeout_s}s "
            "(CELERIAC_MAX_TIMEOUT_S)"
        )
    if job_cls.timeout:
        options["soft_time_limit"] = job_cls.timeout
        options["time_limit"] = job_cls.timeout + HARD_LIMIT_GRACE_S
    task = celery_app.task(**options)(run)
    task.celeriac_job = job_cls
    task.celeriac_declared = declared_options(job_cls)
    task.celeriac_has_backoff = RetryPolicy.of_job(job_cls).backoff is not None
    return task


#: Class attributes whose explicit value wins over a queue's settings, by dispatch's names.
_QUEUE_OVERRIDABLE = {"max_tries": "max_attempts", "timeout": "timeout", "encrypted": "encrypted"}


def declared_options(job_cls: type[Job]) -> frozenset[str]:
    """Options the class (or a base of its own) states; Job's defaults give way to the queue's."""
    stated = {name for klass in job_cls.__mro__ if klass is not Job and issubclass(klass, Job) for name in vars(klass)}
    return frozenset(option for attr, option in _QUEUE_OVERRIDABLE.items() if attr in stated)


def job(
    name: str | None = None,
    *,
    queue: str = "default",
    priority: int = DEFAULT_PRIORITY,
    max_tries: int | None = None,
    backoff: Backoff = None,
    timeout: int | None = None,
    retry_on: Sequence[type[BaseException]] = (),
    dont_retry_on: Sequence[type[BaseException]] = (),
) -> Callable[[Callable[..., Any]], type[Job]]:
    """Turn a function into a Job class: `@job(queue="emails", max_tries=3)`.

    Options left out are not set on the class, so the queue's settings apply to them.
    """

    def decorate(func: Callable[..., Any]) -> type[Job]:
        def handle(self: Job, **payload: Any) -> Any:
            return func(**payload)

        stated = {"max_tries": max_tries, "backoff": backoff, "timeout": timeout}
        attrs: dict[str, Any] = {
            "name": name or f"{func.__module__}.{func.__name__}",
            "queue": queue,
            "priority": priority,
            **{key: value for key, value in stated.items() if value is not None},
            "retry_on": tuple(retry_on),
            "dont_retry_on": tuple(dont_retry_on),
            "description": func.__doc__,
            "handle": handle,
            "__module__": func.__module__,
            "__doc__": func.__doc__,
        }
        return type(func.__name__, (Job,), attrs)

    return decorate
