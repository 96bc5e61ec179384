"""Batches and chains (J5, J6): create, grow, cancel, and their status as the API shows it.

Everything is validated before anything is written or queued (all or nothing). Rows
exist before their messages; the hub's counters exist before the first publish, so a
job finishing at once is always counted. Status and counts are read from the rows
themselves, so they never drift from the jobs' own history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.composition.batch_views import batch_view, chain_view
from app.composition.bulk_submit import Resolver, gc_paused, queue_all, record, stamp
from app.composition.hub import Hub
from app.composition.specs import to_spec
from app.config import Settings
from app.errors import Conflict, NotFound, ValidationError
from app.kernel.cancel import cancel_job
from app.kernel.dispatching import DispatchSpec, ResolvedJob
from app.kernel.ports import Canceller, Publisher, Registry
from app.models import LIVE_STATUSES, JobBatch, JobExecution

CALLBACKS = ("then", "catch", "finally")


@dataclass
class BatchRequest:
    tenant_id: str
    jobs: list[DispatchSpec]
    name: str | None = None
    allow_failures: int = 0
    then: DispatchSpec | None = None
    catch: DispatchSpec | None = None
    finally_: DispatchSpec | None = None
    #: The batch's id, when the caller chose it up front (an idempotent request); else new.
    id: str | None = None


@dataclass(frozen=True)
class Created:
    id: str
    job_ids: list[str]


def _check_size(count: int, settings: Settings, what: str) -> None:
    if count < 1:
        raise ValidationError(f"{what} needs at least one job")
    if count > settings.max_batch_jobs:
        raise ValidationError(f"{what} has {count} jobs; the most allowed is {settings.max_batch_jobs}")


def create_batch(
    session: Session, request: BatchRequest, *, registry: Registry, publisher: Publisher, settings: Settings, hub: Hub
) -> Created:
    """Validate every job and callback, record them, then queue the jobs (J5).

    Raises:
        ValidationError: empty or oversized batch, a bad job or callback, bad allow_failures.
        BackendUnavailable: the broker took none of the jobs; they are recorded failed.
    """
    with gc_paused():
        return _create_batch(session, request, registry=registry, publisher=publisher, settings=settings, hub=hub)


def _create_batch(
    session: Session, request: BatchRequest, *, registry: Registry, publisher: Publisher, settings: Settings, hub: Hub
) -> Created:
    _check_size(len(request.jobs), settings, "a batch")
    if isinstance(request.allow_failures, bool) or not isinstance(request.allow_failures, int):
        raise ValidationError("allow_failures must be an integer")
    if request.allow_failures < 0:
        raise ValidationError("allow_failures must be 0 or more")
    batch_id = request.id or str(uuid.uuid4())
    resolver = Resolver(session, registry, settings)
    jobs = resolver.many(request.jobs, tenant_id=request.tenant_id, batch_id=batch_id)
    callbacks = {
        name: resolver(replace(spec, tenant_id=request.tenant_id), name)
        for name, spec in zip(CALLBACKS, (request.then, request.catch, request.finally_), strict=True)
        if spec is not None
    }
    batch = JobBatch(
        id=batch_id,
        tenant_id=request.tenant_id,
        kind="batch",
        name=request.name,
        status="pending",
        total_jobs=len(jobs),
        pending_jobs=len(jobs),
        allow_failures=request.allow_failures,
        then_job=_callback_json(callbacks.get("then")),
        catch_job=_callback_json(callbacks.get("catch")),
        finally_job=_callback_json(callbacks.get("finally")),
    )
    resolver.check_room(jobs)
    session.add(batch)
    published_at = stamp()
    held, prepared = record(session, jobs, settings, published_at, publisher)
    session.commit()
    hub.open_batch(batch_id, len(jobs), request.allow_failures, {n: j.job_id for n, j in callbacks.items()})
    for callback in callbacks.values():
        hub.hold(callback.job_id, to_spec(callback), [])
    queue_all(session, jobs, held, publisher, hub, published_at, prepared)
    return Created(batch_id, [job.job_id for job in jobs])


def _callback_json(job: ResolvedJob | None) -> dict[str, Any] | None:
    """The callback as the batch row keeps it: with its spec, so it can be held again if
    Redis loses the held copy (app.composition.resync)."""
    return None if job is None else {"id": job.job_id, "job_class": job.job_class, "spec": to_spec(job)}


def _get(session: Session, batch_id: str, tenant_id: str | None, kind: str) -> JobBatch:
    row = session.get(JobBatch, batch_id)
    if row is None or row.kind != kind or (tenant_id is not None and row.tenant_id != tenant_id):
        raise NotFound(f"no {kind} {batch_id}")
    return row


def add_jobs(
    session: Session,
    batch_id: str,
    tenant_id: str | None,
    specs: list[DispatchSpec],
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    hub: Hub,
) -> list[str]:
    """Add jobs to a running batch; its callbacks wait for them too.

    Raises:
        NotFound: unknown batch or another tenant's.
        ValidationError: a bad job, or the batch would exceed the maximum.
        Conflict: the batch finished or was cancelled.
    """
    with gc_paused():
        return _add_jobs(
            session, batch_id, tenant_id, specs, registry=registry, publisher=publisher, settings=settings, hub=hub
        )


def _add_jobs(
    session: Session,
    batch_id: str,
    tenant_id: str | None,
    specs: list[DispatchSpec],
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    hub: Hub,
) -> list[str]:
    batch = _get(session, batch_id, tenant_id, "batch")
    if not specs:
        raise ValidationError("jobs must name at least one job")
    _check_size(batch.total_jobs + len(specs), settings, "the batch")
    if batch.cancelled_at is not None:
        raise Conflict(f"batch {batch_id} was cancelled")
    resolver = Resolver(session, registry, settings)
    jobs = resolver.many(specs, tenant_id=batch.tenant_id, batch_id=batch_id)
    resolver.check_room(jobs)
    # Grow the counters first: from here on the batch cannot finish without these jobs.
    if hub.grow_batch(batch_id, len(jobs)) < 0:
        raise Conflict(f"batch {batch_id} already finished or was cancelled")
    batch.total_jobs += len(jobs)
    published_at = stamp()
    held, prepared = record(session, jobs, settings, published_at, publisher)
    session.commit()
    queue_all(session, jobs, held, publisher, hub, published_at, prepared)
    return [job.job_id for job in jobs]


def cancel_batch(
    session: Session, batch_id: str, tenant_id: str | None, *, canceller: Canceller, hub: Hub
) -> tuple[JobBatch, int]:
    """Cancel a batch: its pending and running jobs are cancelled; `finally` still runs.

    Raises:
        NotFound: unknown batch or another tenant's.
        Conflict: already finished or cancelled.
    """
    batch = _get(session, batch_id, tenant_id, "batch")
    view = batch_view(session, batch)
    if view["status"] in ("finished", "failed", "cancelled"):
        raise Conflict(f"batch {batch_id} is {view['status']}")
    hub.cancel_batch(batch_id)
    batch.cancelled_at = datetime.now(UTC)
    batch.status = "cancelled"
    session.commit()
    return batch, _cancel_live(session, JobExecution.batch_id == batch_id, tenant_id, canceller)


def _cancel_live(session: Session, condition: Any, tenant_id: str | None, canceller: Canceller) -> int:
    live = [s.value for s in LIVE_STATUSES]
    ids = list(session.scalars(select(JobExecution.id).where(condition, JobExecution.status.in_(live))))
    cancelled = 0
    for job_id in ids:
        try:
            cancel_job(session, job_id, tenant_id, canceller=canceller)
            cancelled += 1
        except Conflict:
            pass  # it finished meanwhile
    return cancelled


def get_batch(session: Session, batch_id: str, tenant_id: str | None) -> dict[str, Any]:
    """Raises: NotFound for an unknown batch or another tenant's."""
    return batch_view(session, _get(session, batch_id, tenant_id, "batch"))


# -- chains ---------------------------------------------------------------------------
def create_chain(
    session: Session,
    tenant_id: str,
    steps: list[DispatchSpec],
    catch: DispatchSpec | None,
    name: str | None,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    hub: Hub,
    chain_id: str | None = None,
) -> Created:
    """Queue the first step; each later step waits for the one before and gets its result (J6).

    `chain_id` is the chain's id when the caller chose it up front (an idempotent request).

    Raises:
        ValidationError: empty or oversized chain, or a bad step or catch job.
        BackendUnavailable: the broker failed; the first step is recorded failed.
    """
    _check_size(len(steps), settings, "a chain")
    chain_id = chain_id or str(uuid.uuid4())
    ids = [str(uuid.uuid4()) for _ in steps]
    resolver = Resolver(session, registry, settings)
    jobs = [
        replace(
            resolver(replace(spec, tenant_id=tenant_id, chain_id=chain_id, chain_step=k, job_id=ids[k]), f"jobs[{k}]"),
            depends_on=[ids[k - 1]] if k else None,
        )
        for k, spec in enumerate(steps)
    ]
    catch_job = resolver(replace(catch, tenant_id=tenant_id), "catch") if catch is not None else None
    resolver.check_room(jobs)
    session.add(
        JobBatch(
            id=chain_id,
            tenant_id=tenant_id,
            kind="chain",
            name=name,
            status="pending",
            total_jobs=len(jobs),
            pending_jobs=len(jobs),
            catch_job=_callback_json(catch_job),
            options={"job_ids": ids},
        )
    )
    published_at = stamp()
    held, _ = record(session, jobs, settings, published_at, publisher)  # the first step may be held
    session.commit()
    hub.open_chain(chain_id, catch_job.job_id if catch_job else None)
    if catch_job is not None:
        hub.hold(catch_job.job_id, to_spec(catch_job), [])
    for k in range(1, len(jobs)):
        hub.hold(ids[k], to_spec(jobs[k], pass_result=True), [ids[k - 1]])
    queue_all(session, jobs[:1], held, publisher, hub, published_at)
    return Created(chain_id, ids)


def get_chain(session: Session, chain_id: str, tenant_id: str | None) -> dict[str, Any]:
    """Raises: NotFound for an unknown chain or another tenant's."""
    return chain_view(session, _get(session, chain_id, tenant_id, "chain"))


def cancel_chain(
    session: Session, chain_id: str, tenant_id: str | None, *, canceller: Canceller
) -> tuple[dict[str, Any], int]:
    """Cancel the running step and every waiting one (no catch job: nothing failed).

    Raises:
        NotFound: unknown chain or another tenant's.
        Conflict: the chain already finished, failed or was cancelled.
    """
    chain = _get(session, chain_id, tenant_id, "chain")
    status = chain_view(session, chain)["status"]
    if status in ("finished", "failed", "cancelled"):
        raise Conflict(f"chain {chain_id} is {status}")
    chain.cancelled_at = datetime.now(UTC)
    chain.status = "cancelled"
    session.commit()
    cancelled = _cancel_live(session, JobExecution.chain_id == chain_id, tenant_id, canceller)
    return chain_view(session, chain), cancelled
