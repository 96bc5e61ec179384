"""Batches and chains (J5, J6): create, grow, cancel, and their status as the API shows it.

Everything is validated before anything is written or queued (all or nothing). Rows
exist before their messages; the hub's counters exist before the first publish, so a
job finishing at once is always counted. Status and counts are read from the rows
themselves, so they never drift from the jobs' own history.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.composition.hub import Hub
from app.composition.specs import to_spec
from app.config import Settings
from app.errors import BackendUnavailable, Conflict, NotFound, ValidationError
from app.models import LIVE_STATUSES, ExecutionStatus, JobBatch, JobDefinition, JobExecution
from app.services.dispatching import DispatchSpec, Publisher, Registry, ResolvedJob, find_definition, resolve
from app.services.jobs import Canceller, cancel_job, mark_unqueued, pending_row

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


class _Resolver:
    """Resolves many specs with one definition lookup per job class."""

    def __init__(self, session: Session, registry: Registry, settings: Settings) -> None:
        self.session, self.registry, self.settings = session, registry, settings
        self._definitions: dict[tuple[str, str], JobDefinition | None] = {}

    def __call__(self, spec: DispatchSpec, where: str) -> ResolvedJob:
        if spec.depends_on or spec.unique_for:
            raise ValidationError(f"{where}: depends_on and unique_for are not available inside a batch or chain")
        key = (spec.tenant_id, spec.job_class)
        if key not in self._definitions:
            self._definitions[key] = find_definition(self.session, spec.job_class, spec.tenant_id)
        try:
            return resolve(spec, self.registry.get(spec.job_class), self._definitions[key], self.settings)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from exc


def _check_size(count: int, settings: Settings, what: str) -> None:
    if count < 1:
        raise ValidationError(f"{what} needs at least one job")
    if count > settings.max_batch_jobs:
        raise ValidationError(f"{what} has {count} jobs; the most allowed is {settings.max_batch_jobs}")


def _publish_all(session: Session, jobs: Sequence[ResolvedJob], publisher: Publisher) -> None:
    """Publish in order (over one connection when the publisher can); if the broker fails
    midway the rest are recorded failed."""
    sent = 0
    try:
        bulk = getattr(publisher, "publish_many", None)
        if bulk is not None:
            sent = bulk(jobs)
        else:
            for job in jobs:
                publisher.publish(job)
                sent += 1
    except Exception as exc:  # broker boundary: accepted jobs must not vanish
        sent = int(getattr(exc, "sent", sent))
        for rest in jobs[sent:]:
            mark_unqueued(session, rest.job_id, f"could not be queued: {exc}")
        raise BackendUnavailable(
            f"the broker is unavailable; {len(jobs) - sent} of {len(jobs)} jobs were not queued"
        ) from exc


def create_batch(
    session: Session, request: BatchRequest, *, registry: Registry, publisher: Publisher, settings: Settings, hub: Hub
) -> Created:
    """Validate every job and callback, record them, then queue the jobs (J5).

    Raises:
        ValidationError: empty or oversized batch, a bad job or callback, bad allow_failures.
        BackendUnavailable: the broker failed; unqueued jobs are recorded failed.
    """
    _check_size(len(request.jobs), settings, "a batch")
    if isinstance(request.allow_failures, bool) or not isinstance(request.allow_failures, int):
        raise ValidationError("allow_failures must be an integer")
    if request.allow_failures < 0:
        raise ValidationError("allow_failures must be 0 or more")
    batch_id = request.id or str(uuid.uuid4())
    resolver = _Resolver(session, registry, settings)
    jobs = [
        resolver(replace(spec, tenant_id=request.tenant_id, batch_id=batch_id), f"jobs[{i}]")
        for i, spec in enumerate(request.jobs)
    ]
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
    session.add(batch)
    session.add_all([pending_row(job, None) for job in jobs])
    session.commit()
    hub.open_batch(batch_id, len(jobs), request.allow_failures, {n: j.job_id for n, j in callbacks.items()})
    for callback in callbacks.values():
        hub.hold(callback.job_id, to_spec(callback), [])
    _publish_all(session, jobs, publisher)
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
    batch = _get(session, batch_id, tenant_id, "batch")
    if not specs:
        raise ValidationError("jobs must name at least one job")
    _check_size(batch.total_jobs + len(specs), settings, "the batch")
    if batch.cancelled_at is not None:
        raise Conflict(f"batch {batch_id} was cancelled")
    resolver = _Resolver(session, registry, settings)
    jobs = [
        resolver(replace(spec, tenant_id=batch.tenant_id, batch_id=batch_id), f"jobs[{i}]")
        for i, spec in enumerate(specs)
    ]
    # Grow the counters first: from here on the batch cannot finish without these jobs.
    if hub.grow_batch(batch_id, len(jobs)) < 0:
        raise Conflict(f"batch {batch_id} already finished or was cancelled")
    batch.total_jobs += len(jobs)
    session.add_all([pending_row(job, None) for job in jobs])
    session.commit()
    _publish_all(session, jobs, publisher)
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


def _counts(session: Session, column: Any, group_id: str) -> dict[str, tuple[int, datetime | None]]:
    rows = session.execute(
        select(JobExecution.status, func.count(), func.max(JobExecution.updated_at))
        .where(column == group_id)
        .group_by(JobExecution.status)
    ).all()
    return {status: (int(count), last) for status, count, last in rows}


def batch_view(session: Session, batch: JobBatch) -> dict[str, Any]:
    """The batch as `GET /api/batches/{id}` shows it, counted from its jobs' rows."""
    return batch_view_from(batch, _counts(session, JobExecution.batch_id, batch.id))


def batch_view_from(batch: JobBatch, counts: dict[str, tuple[int, datetime | None]]) -> dict[str, Any]:
    """`batch_view` from counts already read ({status: (jobs, last update)}), e.g. for a page of batches."""
    total = sum(n for n, _ in counts.values())
    failed = sum(counts.get(s, (0, None))[0] for s in ("failed", "cancelled"))
    processed = failed + counts.get("completed", (0, None))[0]
    started = processed + counts.get("processing", (0, None))[0] + counts.get("retrying", (0, None))[0]
    finished_at = None
    if batch.cancelled_at is not None:
        status = "cancelled"
    elif total and processed >= total:
        status = "failed" if failed > batch.allow_failures else "finished"
        finished_at = max((last for _, last in counts.values() if last is not None), default=None)
    else:
        status = "running" if started else "pending"
    return {
        "id": batch.id,
        "name": batch.name,
        "status": status,
        "total_jobs": total,
        "pending_jobs": total - processed,
        "processed_jobs": processed,
        "failed_jobs": failed,
        "allow_failures": batch.allow_failures,
        "progress": int(processed * 100 / total) if total else 0,
        "then_job_id": (batch.then_job or {}).get("id"),
        "catch_job_id": (batch.catch_job or {}).get("id"),
        "finally_job_id": (batch.finally_job or {}).get("id"),
        "created_at": batch.created_at.isoformat(),
        "finished_at": finished_at.isoformat() if finished_at else None,
        "cancelled_at": batch.cancelled_at.isoformat() if batch.cancelled_at else None,
    }


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
    resolver = _Resolver(session, registry, settings)
    jobs = [
        replace(
            resolver(replace(spec, tenant_id=tenant_id, chain_id=chain_id, chain_step=k, job_id=ids[k]), f"jobs[{k}]"),
            depends_on=[ids[k - 1]] if k else None,
        )
        for k, spec in enumerate(steps)
    ]
    catch_job = resolver(replace(catch, tenant_id=tenant_id), "catch") if catch is not None else None
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
    session.add_all([pending_row(job, None) for job in jobs])
    session.commit()
    hub.open_chain(chain_id, catch_job.job_id if catch_job else None)
    if catch_job is not None:
        hub.hold(catch_job.job_id, to_spec(catch_job), [])
    for k in range(1, len(jobs)):
        hub.hold(ids[k], to_spec(jobs[k], pass_result=True), [ids[k - 1]])
    _publish_all(session, jobs[:1], publisher)
    return Created(chain_id, ids)


def chain_view(session: Session, chain: JobBatch) -> dict[str, Any]:
    """The chain as `GET /api/chains/{id}` shows it: current step counts from 1."""
    ids: list[str] = list((chain.options or {}).get("job_ids") or [])
    statuses = dict(
        session.execute(select(JobExecution.id, JobExecution.status).where(JobExecution.chain_id == chain.id)).all()
    )
    ordered = [statuses.get(job_id, ExecutionStatus.PENDING.value) for job_id in ids]
    state = chain_state(chain, Counter(ordered), len(ordered))
    return {
        "id": chain.id,
        "name": chain.name,
        **state,
        "job_ids": ids,
        "steps": [{"id": job_id, "status": s} for job_id, s in zip(ids, ordered, strict=True)],
        "catch_job_id": (chain.catch_job or {}).get("id"),
        "created_at": chain.created_at.isoformat(),
    }


def chain_state(chain: JobBatch, by_status: Mapping[str, int], total: int) -> dict[str, Any]:
    """Status, current step (from 1) and progress of a chain from its steps' status counts.

    Steps run one after another, so the completed ones are the first ones and the current
    step is the one after them.
    """
    done = by_status.get(ExecutionStatus.COMPLETED.value, 0)
    if by_status.get(ExecutionStatus.FAILED.value):
        status = "failed"
    elif chain.cancelled_at is not None or by_status.get(ExecutionStatus.CANCELLED.value):
        status = "cancelled"
    elif done == total:
        status = "finished"
    elif done or by_status.get("processing") or by_status.get("retrying"):
        status = "running"
    else:
        status = "pending"
    return {
        "status": status,
        "current_step": min(done + 1, total),
        "total_steps": total,
        "progress": int(done * 100 / total) if total else 0,
    }


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
