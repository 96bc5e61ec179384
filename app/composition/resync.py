"""Composition state Redis lost, rebuilt from SQL (R1): held jobs, batch counters, chain catches.

Batches, chains and dependencies keep their working state in Redis (app.composition.hub):
jobs held until their dependencies complete, the counters that fire a batch's callbacks
once, a chain's catch job. Redis restarted without its data loses all of it, and with it
jobs that were accepted. SQL keeps what is needed to rebuild it: every held job has its row
(with its message's shape), and a batch's or chain's row keeps its callbacks' specs.

- `rehold_lost`: a job still waiting for dependencies whose held copy is gone is held
  again; dependencies that finished meanwhile are resolved at once (released or cancelled).
  Run by the reconciler.
- `rebuild_batch`: a batch whose counters are gone gets them back from its rows, its finished
  jobs are accounted again and the callbacks not yet run are held again (fired if due).
  Run when the recorder finds the counters missing while accounting a finished job.
- `release_lost_catch`: a failed chain step whose chain lost its catch: the catch is published
  from the chain's row unless it already ran.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import redis_keys
from app.composition.hub import Hub
from app.composition.specs import to_spec
from app.kernel.dispatching import ResolvedJob
from app.kernel.message import split_payload
from app.models import TERMINAL_STATUSES, ExecutionStatus, JobBatch, JobExecution

logger = logging.getLogger(__name__)

#: Held jobs looked at per reconciler run.
MAX_HELD = 1000
_TERMINAL = [status.value for status in TERMINAL_STATUSES]
#: Batch callbacks, in the order the hub names them.
CALLBACKS = (("then", "then_job"), ("catch", "catch_job"), ("finally", "finally_job"))


def job_of_row(row: JobExecution) -> ResolvedJob:
    """The resolved job a held row stands for (its payload as stored: sealed if encrypted)."""
    shape: dict[str, Any] = row.message or {}
    celeriac: dict[str, Any] = shape.get("h") or {}
    limits = shape.get("tl")
    args, payload = split_payload(row.payload)
    return ResolvedJob(
        job_id=row.id,
        job_class=row.job_class,
        payload=payload,
        tenant_id=row.tenant_id,
        queue=row.queue,
        priority=row.priority,
        delay_s=_delay_of(row),
        max_attempts=row.max_attempts,
        backoff=celeriac.get("backoff"),
        timeout_s=int(limits[1]) if isinstance(limits, list) and len(limits) == 2 and limits[1] else None,
        tags=list(row.tags or []),
        retry_of=row.retry_of,
        job_definition_id=row.job_definition_id,
        args=args,
        depends_on=list(row.depends_on or []) or None,
        encrypted=bool(row.encrypted),
        batch_id=row.batch_id,
        chain_id=row.chain_id,
        chain_step=row.chain_step,
        schedule_id=row.schedule_id,
    )


def _delay_of(row: JobExecution) -> float:
    """The delay a waiting row was dispatched with (its ETA was set from it when accepted)."""
    if row.eta is None or row.created_at is None:
        return 0.0
    return max(0.0, round((row.eta - row.created_at).total_seconds(), 3))


def _in_outbox(hub: Hub) -> set[str]:
    """Ids of released jobs waiting in the outbox or being published (lists kept short)."""
    found: set[str] = set()
    for raw in [*hub.redis.lrange(redis_keys.OUTBOX, 0, -1), *hub.redis.lrange(redis_keys.OUTBOX_INFLIGHT, 0, -1)]:
        try:
            found.add(str(json.loads(json.loads(raw)["spec"])["job_id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return found


def rehold_lost(session: Session, hub: Hub, now: datetime, grace: timedelta) -> list[str]:
    """Hold again the waiting jobs whose held copy Redis lost; returns their ids.

    A job counts as waiting while its row is pending with dependencies and was never
    published nor held in the scheduled set (a released long delay, app.composition.held_release).
    Its dependencies must all have been live, or have ended more than `grace` ago: a release in
    flight (published, its publish event not yet written) is not mistaken for a loss.
    """
    rows = list(
        session.scalars(
            select(JobExecution)
            .where(
                JobExecution.status == ExecutionStatus.PENDING.value,
                JobExecution.published_at.is_(None),
                JobExecution.due_at.is_(None),  # released and held in the scheduled set: not lost
                JobExecution.depends_on.is_not(None),
                JobExecution.created_at < now - grace,
            )
            .limit(MAX_HELD)
        )
    )
    if not rows:
        return []
    holding = hub.held([row.id for row in rows])
    missing = [row for row, held in zip(rows, holding, strict=True) if not held]
    if not missing:
        return []
    queued = _in_outbox(hub)
    missing = [row for row in missing if row.id not in queued]
    deps = _statuses(session, {dep for row in missing for dep in row.depends_on or []})
    reheld = []
    for row in missing:
        mine = {dep: deps.get(dep, (None, None)) for dep in row.depends_on or []}
        ended = [at for status, at in mine.values() if status in _TERMINAL and at is not None]
        if any(at > now - grace for at in ended):
            continue  # released moments ago, maybe: judged on a later run
        hold_again(hub, row, {dep: status for dep, (status, _at) in mine.items()})
        reheld.append(row.id)
    if reheld:
        logger.warning("Composition: %d waiting jobs held again (Redis had lost them)", len(reheld))
    return reheld


def _statuses(session: Session, ids: set[str]) -> dict[str, tuple[str | None, datetime | None]]:
    found: dict[str, tuple[str | None, datetime | None]] = {}
    listed = list(ids)
    for start in range(0, len(listed), 500):
        for job_id, status, updated in session.execute(
            select(JobExecution.id, JobExecution.status, JobExecution.updated_at).where(
                JobExecution.id.in_(listed[start : start + 500])
            )
        ):
            found[job_id] = (status, updated)
    return found


def hold_again(hub: Hub, row: JobExecution, deps: dict[str, str | None]) -> None:
    """Hold `row`'s job on all its dependencies, then resolve those that already ended."""
    pass_result = bool(row.chain_id and (row.chain_step or 0) > 0)
    hub.hold(row.id, to_spec(job_of_row(row), pass_result=pass_result), list(deps))
    for dep, status in deps.items():
        if status in _TERMINAL:
            assert status is not None
            hub.resolve(dep, status, f"dependency {dep} {status}")
        elif status is None:
            hub.resolve(dep, ExecutionStatus.CANCELLED.value, f"dependency {dep} is gone")


def rebuild_batch(session: Session, hub: Hub, batch_id: str) -> list[str]:
    """Counters and callbacks of a batch whose hash Redis lost; returns callbacks it released."""
    batch = session.get(JobBatch, batch_id)
    if batch is None or batch.kind != "batch":
        return []
    callbacks = {name: getattr(batch, column) or {} for name, column in CALLBACKS}
    ids = {name: callback.get("id") for name, callback in callbacks.items() if callback.get("id")}
    already = set(
        session.scalars(select(JobExecution.id).where(JobExecution.id.in_([i for i in ids.values() if i])))
    )
    claimed = [name for name, job_id in ids.items() if job_id in already]
    counters: dict[str, Any] = {
        "total": batch.total_jobs,
        "processed": 0,
        "failed": 0,
        "allow": batch.allow_failures,
        **ids,
    }
    if batch.cancelled_at is not None:
        counters["cancelled"] = "1"
    hub.restore_batch(batch_id, counters, claimed)
    for name, callback in callbacks.items():
        if name in claimed or not callback.get("id"):
            continue
        if not isinstance(callback.get("spec"), dict):
            logger.error("Batch %s: its %s callback cannot be held again (created before it was kept)", batch_id, name)
            continue
        hub.hold(callback["id"], callback["spec"], [])
    released: list[str] = []
    finished = session.execute(
        select(JobExecution.id, JobExecution.status).where(
            JobExecution.batch_id == batch_id, JobExecution.status.in_(_TERMINAL)
        )
    ).all()
    for job_id, status in finished:
        released.extend(hub.account_batch_job(batch_id, job_id, failed=status != ExecutionStatus.COMPLETED.value) or [])
    logger.warning("Batch %s: counters rebuilt from SQL (Redis had lost them); released %s", batch_id, released)
    return released


def release_lost_catch(session: Session, hub: Hub, chain_id: str) -> bool:
    """A step of `chain_id` failed and the chain's catch is not in Redis: publish it from the
    chain's row (through the outbox) unless it already ran. Returns whether it did."""
    if hub.has_chain(chain_id):
        return False  # the hub has it: already released, or released by release_chain_catch
    chain = session.get(JobBatch, chain_id)
    catch = (chain.catch_job or {}) if chain is not None else {}
    if not catch.get("id") or not isinstance(catch.get("spec"), dict):
        return False
    if session.get(JobExecution, catch["id"]) is not None:
        return False  # it ran already
    pipe = hub.redis.pipeline(transaction=True)
    pipe.hset(redis_keys.chain(chain_id), "catch", catch["id"])
    pipe.set(redis_keys.held_job(catch["id"]), json.dumps(catch["spec"]))
    pipe.execute()
    return hub.release_chain_catch(chain_id)
