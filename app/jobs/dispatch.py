"""Fluent dispatch from code: `Job.on_queue("high").delay(60).with_priority(9).dispatch(...)`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from app.backends.current import backends
from app.composition.bulk_submit import submit_many
from app.composition.runtime import get_hub
from app.composition.submit import resolve_spec, submit
from app.config import get_settings
from app.db import session_scope
from app.errors import BackendUnavailable
from app.jobs.celery_backend import run_in_process
from app.kernel.dispatching import DispatchSpec, ResolvedJob, resolve
from app.kernel.ports import Publisher


def is_fake(publisher: Publisher) -> bool:
    """A test fake (J12) captures dispatches without SQL or Redis."""
    return bool(getattr(publisher, "captures_dispatches", False))


def prepare(spec: DispatchSpec) -> ResolvedJob:
    """Validate against the registry and the job's definition row.

    Raises:
        ValidationError: unknown or inactive job class, or an option out of range.
    """
    used = backends()
    if is_fake(used.publisher):
        return resolve(spec, used.registry.get(spec.job_class), None, get_settings())
    with session_scope() as session:
        return resolve_spec(session, spec, used.registry, get_settings())[0]


#: `with_options` / `Job.dispatch_many` option names (the API's) -> DispatchSpec fields.
_OPTION_FIELDS = {
    "queue": "queue",
    "priority": "priority",
    "delay": "delay_s",
    "max_attempts": "max_attempts",
    "backoff": "backoff",
    "timeout": "timeout_s",
    "expires": "expires_s",
    "tags": "tags",
    "encrypted": "encrypted",
    "concurrency_key": "concurrency_key",
    "concurrency_limit": "concurrency_limit",
    "tenant": "tenant_id",
}


@dataclasses.dataclass(frozen=True)
class JobCall:
    """A job with its payload and options, not yet dispatched: a member of a batch or chain."""

    job_class: str
    payload: dict[str, Any]
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def spec(self, tenant_id: str | None = None) -> DispatchSpec:
        return PendingDispatch(self.job_class, dict(self.options)).spec(self.payload, tenant_id)


@dataclasses.dataclass
class PendingDispatch:
    """Options collected before `dispatch`; each method returns a new object."""

    job_class: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def _with(self, **changes: Any) -> PendingDispatch:
        return PendingDispatch(self.job_class, {**self.options, **changes})

    def on_queue(self, queue: str) -> PendingDispatch:
        return self._with(queue=queue)

    def delay(self, seconds: float) -> PendingDispatch:
        return self._with(delay_s=seconds)

    def with_priority(self, priority: int) -> PendingDispatch:
        return self._with(priority=priority)

    def for_tenant(self, tenant_id: str) -> PendingDispatch:
        return self._with(tenant_id=tenant_id)

    def with_tags(self, *tags: str) -> PendingDispatch:
        return self._with(tags=[*self.options.get("tags", []), *tags])

    def with_timeout(self, seconds: int) -> PendingDispatch:
        return self._with(timeout_s=seconds)

    def with_max_attempts(self, attempts: int) -> PendingDispatch:
        return self._with(max_attempts=attempts)

    def expires(self, seconds: float) -> PendingDispatch:
        """Not run if it has not started `seconds` after its (delayed) due time (J4)."""
        return self._with(expires_s=seconds)

    def after(self, *job_ids: str) -> PendingDispatch:
        """Wait until every one of `job_ids` completed (J7)."""
        return self._with(depends_on=[*self.options.get("depends_on", []), *job_ids])

    def unique(self, for_seconds: int, unique_id: str | None = None) -> PendingDispatch:
        """A twin dispatched within `for_seconds` while this one is live returns this one (J8)."""
        return self._with(unique_for=for_seconds, unique_id=unique_id)

    def encrypted(self, value: bool = True) -> PendingDispatch:
        return self._with(encrypted=value)

    def with_options(self, **options: Any) -> PendingDispatch:
        """Options by the names the API uses: queue, priority, delay, max_attempts, backoff,
        timeout, expires, tags, encrypted, concurrency_key, concurrency_limit, tenant.

        Raises:
            TypeError: an option of another name.
        """
        unknown = sorted(set(options) - set(_OPTION_FIELDS))
        if unknown:
            raise TypeError(f"unknown dispatch option(s) {', '.join(unknown)}; known: {', '.join(_OPTION_FIELDS)}")
        return self._with(**{_OPTION_FIELDS[name]: value for name, value in options.items()})

    def make(self, **payload: Any) -> JobCall:
        """This job with `payload`, for `batch([...])` or `chain([...])`."""
        return JobCall(self.job_class, payload, dict(self.options))

    def spec(self, payload: dict[str, Any], tenant_id: str | None = None) -> DispatchSpec:
        options = dict(self.options)
        if tenant_id is not None:
            options["tenant_id"] = tenant_id
        options.setdefault("tenant_id", get_settings().default_tenant)
        return DispatchSpec(job_class=self.job_class, payload=payload, **options)

    def dispatch(self, **payload: Any) -> str:
        """Validate, record and queue; returns the job id (a unique twin's id, J8).

        Raises:
            ValidationError: unknown or inactive job class, an option out of range, or a
                bad dependency.
            BackendUnavailable: the database or the broker is unavailable; nothing runs (a job
                recorded before the broker failed is recorded failed, "could not be queued").
            QueueFull: the queue already holds its `max_pending` pending jobs; nothing is queued.
        """
        spec = self.spec(payload)
        used = backends()
        publisher = used.publisher
        if is_fake(publisher):
            job = prepare(spec)
            publisher.publish(job)
            return job.job_id

        try:
            with session_scope() as session:
                done = submit(session, spec, registry=used.registry, publisher=publisher, settings=get_settings())
                return done.id
        except SQLAlchemyError as exc:
            reason = exc.__class__.__name__
            raise BackendUnavailable(f"the database is unavailable; the job was not accepted ({reason})") from exc

    def dispatch_many(self, payloads: Iterable[Mapping[str, Any]]) -> list[str]:
        """Validate, record and queue one job per payload, all with these options; their ids,
        in order. One multi-row insert, one commit, one pipelined publish (docs/jobs.md
        "Many jobs at once"); unique jobs and dependencies are dispatched one by one instead.

        Raises:
            ValidationError: a payload or an option is refused (nothing is queued), or more
                than CELERIAC_MAX_BATCH_JOBS payloads.
            QueueFull: the queue has no room for all of them (nothing is queued).
            BackendUnavailable: the database is unavailable (nothing is accepted), or the broker
                took none of them (they are recorded failed). If it fails part-way, the call
                succeeds: the reconciler publishes the jobs whose message is missing.
        """
        specs = [self.spec(dict(payload)) for payload in payloads]
        used = backends()
        if is_fake(used.publisher):
            jobs = [prepare(spec) for spec in specs]
            for job in jobs:
                used.publisher.publish(job)
            return [job.job_id for job in jobs]
        settings = get_settings()
        try:
            with session_scope() as session:
                return submit_many(
                    session, specs, registry=used.registry, publisher=used.publisher, settings=settings,
                    hub=get_hub(settings),
                )  # fmt: skip
        except SQLAlchemyError as exc:
            reason = exc.__class__.__name__
            raise BackendUnavailable(f"the database is unavailable; no job was accepted ({reason})") from exc

    def dispatch_now(self, **payload: Any) -> Any:
        """Run in this process and return the result; recorded like a queued run.

        Raises:
            ValidationError: as `dispatch`; and whatever the job raised, after its retries.
        """

        return run_in_process(prepare(self.spec(payload)))
