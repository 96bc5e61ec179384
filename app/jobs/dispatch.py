"""Fluent dispatch from code: `Job.on_queue("high").delay(60).with_priority(9).dispatch(...)`."""

from __future__ import annotations

import dataclasses
from typing import Any

from app.config import get_settings
from app.db import session_scope
from app.services.dispatching import (
    DispatchSpec,
    Publisher,
    Registry,
    ResolvedJob,
    find_definition,
    resolve,
)

_publisher: Publisher | None = None
_registry: Registry | None = None


def get_publisher() -> Publisher:
    """The active publisher: Celery, unless a test fake (J12) replaced it."""
    global _publisher
    if _publisher is None:
        from app.jobs.celery_backend import CeleryPublisher

        _publisher = CeleryPublisher()
    return _publisher


def set_publisher(publisher: Publisher | None) -> Publisher | None:
    """Replace the publisher (None restores Celery); returns the previous one."""
    global _publisher
    previous, _publisher = _publisher, publisher
    return previous


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        from app.jobs.celery_backend import CeleryRegistry

        _registry = CeleryRegistry()
    return _registry


def prepare(spec: DispatchSpec) -> ResolvedJob:
    """Validate against the registry and the job's definition row.

    Raises:
        ValidationError: unknown or inactive job class, or an option out of range.
    """
    with session_scope() as session:
        definition = find_definition(session, spec.job_class)
        return resolve(spec, get_registry().get(spec.job_class), definition, get_settings())


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

    def spec(self, payload: dict[str, Any]) -> DispatchSpec:
        options = dict(self.options)
        options.setdefault("tenant_id", get_settings().default_tenant)
        return DispatchSpec(job_class=self.job_class, payload=payload, **options)

    def dispatch(self, **payload: Any) -> str:
        """Validate and queue; returns the job id.

        Raises:
            ValidationError: unknown or inactive job class, or an option out of range.
        """
        job = prepare(self.spec(payload))
        get_publisher().publish(job)
        return job.job_id

    def dispatch_now(self, **payload: Any) -> Any:
        """Run in this process and return the result; recorded like a queued run.

        Raises:
            ValidationError: as `dispatch`; and whatever the job raised, after its retries.
        """
        from app.jobs.celery_backend import run_in_process

        return run_in_process(prepare(self.spec(payload)))
