"""Recording and queuing many jobs at once: batches, chains, `dispatch_many` (J2, J5, J6).

Everything is resolved before anything is written (all or nothing). The rows go in with
one multi-row insert (app.kernel.row_insert) and one commit; then the jobs are published in
one pipelined stream (app.backends.celery_publisher), each message stamped with the publish
time its row records. If the broker fails part-way, every job stays recorded: those whose
message did not reach Redis are published by the reconciler (app.recording.reconcile),
which finds pending rows older than the oldest message left in their queue; if nothing
reached it, the jobs are recorded failed, as for a single dispatch, and the call fails.
"""

from __future__ import annotations

import copy
import gc
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from app.composition.hub import Hub
from app.config import Settings
from app.errors import BackendUnavailable, ValidationError
from app.kernel import dispatch_defaults
from app.kernel.bulk_resolve import resolve_many
from app.kernel.concurrency_claims import record_limit
from app.kernel.dispatching import DispatchSpec, ResolvedJob, resolve
from app.kernel.ports import Publisher, Registry
from app.kernel.queue_defaults import QueueDefaults, check_room
from app.kernel.row_insert import insert_rows
from app.kernel.scheduled import ScheduledSet, hold_values, holds
from app.kernel.writer import mark_unqueued, pending_values
from app.redis_client import get_quick_redis

logger = logging.getLogger(__name__)

#: Jobs from which their rows are inserted in a helper thread while their messages are built.
OVERLAP_FROM_JOBS = 10**9


class Resolver:
    """Resolves many specs: definitions and queue settings read once (this process's copies)."""

    def __init__(self, session: Session, registry: Registry, settings: Settings) -> None:
        self.session, self.registry, self.settings = session, registry, settings
        self.defaults = dispatch_defaults.current(get_quick_redis(settings.redis_url))

    def queue(self, name: str) -> QueueDefaults:
        return self.defaults.queue(self.session, name)

    def check_room(self, jobs: Sequence[ResolvedJob]) -> None:
        """Raises QueueFull when the jobs would put a queue over its max_pending (all or none)."""
        for name, adding in Counter(job.queue for job in jobs).items():
            check_room(self.session, self.queue(name), adding)

    def __call__(self, spec: DispatchSpec, where: str) -> ResolvedJob:
        if spec.depends_on or spec.unique_for:
            raise ValidationError(
                f"{where}: depends_on and unique_for are not available inside a batch, a chain or dispatch_many"
            )
        # Any delay up to max_delay_s: a long one waits in the scheduled set, counted from the
        # job's release for callbacks and later chain steps (app.composition.held_release).
        definition = self.defaults.definition(self.session, spec.job_class, spec.tenant_id)
        try:
            return resolve(spec, self.registry.get(spec.job_class), definition, self.settings, self.queue)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from exc

    def many(self, specs: Sequence[DispatchSpec], **changes: Any) -> list[ResolvedJob]:
        """`specs` (with `changes`, e.g. tenant_id and batch_id, applied to copies) resolved;
        errors name the job as `jobs[i]`."""
        own = [_changed(spec, changes) for spec in specs]
        return resolve_many(
            own,
            lambda i, spec: self(spec, f"jobs[{i}]"),
            self.registry.get,
            self.settings.max_payload_depth,
            lambda i: f"jobs[{i}]",
        )


def _changed(spec: DispatchSpec, changes: dict[str, Any]) -> DispatchSpec:
    if not changes:
        return spec
    own = copy.copy(spec)  # shallow: DispatchSpec's 26 fields, without dataclasses.replace's checks
    for name, value in changes.items():
        setattr(own, name, value)
    return own


def record(
    session: Session, jobs: Sequence[ResolvedJob], settings: Settings, published_at: float, publisher: Publisher
) -> tuple[dict[str, float], Any]:
    """Insert the jobs' pending rows (not committed) and, meanwhile, build their messages.

    Returns the held jobs (a long delay: job id -> due epoch, for the scheduled set after the
    commit) and the publisher's prepared messages (None if it prepares none). The insert runs
    in a helper thread: the database's work (index upkeep, in SQLite's C code or PostgreSQL's
    own process) then overlaps the Python that builds the messages.
    """
    held: dict[str, float] = {}
    rows = []
    for job in jobs:
        values = pending_values(job, None, published_at)
        if not job.depends_on and holds(job.delay_s, settings) and (due := job.eta) is not None:
            hold_values(values, due, job.expires_s)
            held[job.job_id] = due.timestamp()
        rows.append(values)
    connection = session.connection()
    prepare_many = getattr(publisher, "prepare_many", None)
    to_publish = [job for job in jobs if job.job_id not in held and not job.depends_on]
    if prepare_many is None or len(to_publish) < OVERLAP_FROM_JOBS:
        insert_rows(connection, rows)
        return held, None
    inserting = _Background(insert_rows, connection, rows)
    try:
        prepared = prepare_many(to_publish, published_at)
    finally:
        inserting.join()
    return held, prepared


class _Background:
    """A call run in a thread of its own; `join` waits and raises what it raised."""

    def __init__(self, call: Callable[..., None], *args: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call, *args), name="celeriac-bulk-insert")
        self._thread.start()

    def _run(self, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except BaseException as exc:  # handed to the caller's thread by join()
            self._error = exc

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def queue_all(
    session: Session,
    jobs: Sequence[ResolvedJob],
    held: dict[str, float],
    publisher: Publisher,
    hub: Hub,
    published_at: float,
    prepared: Any = None,
) -> None:
    """Hold the long-delayed jobs in the scheduled set, publish the others (after the commit).

    Raises:
        BackendUnavailable: Redis refused the scheduled set, or the broker took none of the
            messages; those jobs are recorded failed (never gone).
    """
    if held:
        try:
            ScheduledSet(hub.redis).add(held)
        except Exception as exc:  # Redis boundary: accepted jobs must not vanish
            for job_id in held:
                mark_unqueued(session, job_id, f"could not be scheduled: {exc}")
            raise BackendUnavailable(f"Redis is unavailable; {len(held)} delayed jobs were not scheduled") from exc
    publish_all(session, [job for job in jobs if job.job_id not in held], publisher, published_at, prepared)


def publish_all(
    session: Session, jobs: Sequence[ResolvedJob], publisher: Publisher, published_at: float, prepared: Any = None
) -> None:
    """Publish in order, pipelined when the publisher can (see the module docstring).

    Raises:
        BackendUnavailable: no message reached the broker; the jobs are recorded failed.
    """
    if not jobs:
        return
    sent = 0
    try:
        bulk = getattr(publisher, "publish_many", None)
        if bulk is not None and prepared is not None:
            sent = bulk(jobs, published_at, prepared=prepared)
        elif bulk is not None:
            sent = bulk(jobs, published_at)
        else:
            for job in jobs:
                publisher.publish(job)
                sent += 1
    except Exception as exc:  # broker boundary: accepted jobs must not vanish
        sent = int(getattr(exc, "sent", sent))
        if sent == 0:
            for job in jobs:
                mark_unqueued(session, job.job_id, f"could not be queued: {exc}")
            raise BackendUnavailable(f"the broker is unavailable; none of {len(jobs)} jobs was queued") from exc
        logger.warning(
            "Broker failed after %d of %d messages (%s): the other jobs stay pending and are "
            "published by the reconciler once their queue has moved past them",
            sent,
            len(jobs),
            exc,
        )


def submit_many(
    session: Session,
    specs: Sequence[DispatchSpec],
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    hub: Hub,
) -> list[str]:
    """Validate, record and queue independent jobs (`Job.dispatch_many`); their ids, in order.

    Raises:
        ValidationError: more than CELERIAC_MAX_BATCH_JOBS jobs, or one is refused (none is
            queued); unique jobs and dependencies are not available here.
        QueueFull: a queue has no room for all of its jobs (none is queued).
        BackendUnavailable: the broker took none of them (they are recorded failed).
    """
    if len(specs) > settings.max_batch_jobs:
        raise ValidationError(f"{len(specs)} jobs at once; the most allowed is {settings.max_batch_jobs}")
    if not specs:
        return []
    with gc_paused():
        resolver = Resolver(session, registry, settings)
        jobs = resolver.many(specs)
        resolver.check_room(jobs)
        published_at = stamp()
        held, prepared = record(session, jobs, settings, published_at, publisher)
        session.commit()
        claims = {
            (job.concurrency["key"], job.concurrency["limit"]): job.concurrency for job in jobs if job.concurrency
        }
        for claim in claims.values():
            record_limit(hub.redis, claim, explicit=any(spec.concurrency_limit is not None for spec in specs))
        queue_all(session, jobs, held, publisher, hub, published_at, prepared)
        return [job.job_id for job in jobs]


_gc_pauses = 0
_gc_lock = threading.Lock()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a bulk builds its jobs, rows and messages.

    It would walk the tens of thousands of live objects a 10,000-job bulk holds, again and
    again: a third of the bulk's time. What a bulk builds holds no reference cycles, so
    reference counting frees it all; the collector runs again once the last bulk running in
    this process is done.
    """
    global _gc_pauses
    with _gc_lock:
        ours = _gc_pauses > 0 or gc.isenabled()  # else someone else turned it off: leave it so
        if ours:
            _gc_pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if ours:
            with _gc_lock:
                _gc_pauses -= 1
                if _gc_pauses == 0:
                    gc.enable()


def stamp() -> float:
    """The publish time of a bulk: on every row and every message of it."""
    return time.time()
