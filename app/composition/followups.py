"""What happens after a job finished: batch callbacks, chain steps, dependants, locks.

Run by the recorder right after it committed a batch of events (and by dispatch when a
dependency had already finished). Every step is idempotent, so a replayed event changes
nothing: the scripts of `app.composition.hub` count each job once and claim each
callback once. Released jobs go through the outbox, published by `drain_outbox`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import false, or_, select
from sqlalchemy.orm import Session

from app.composition.hub import OUTBOX, Hub
from app.composition.specs import from_spec
from app.models import ExecutionStatus, JobExecution
from app.services.dispatching import Publisher

logger = logging.getLogger(__name__)

#: Kinds of event after which a job may have finished for good.
FINAL_KINDS = frozenset({"ok", "fail", "cancel", "reject"})
#: Released jobs a drainer took but has not published yet (recovered at start-up).
INFLIGHT = OUTBOX + ":inflight"
_TERMINAL = [s.value for s in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED)]


@dataclass(frozen=True)
class Finished:
    """A job in a terminal state, with what composition needs to know about it."""

    id: str
    status: str
    batch_id: str | None = None
    chain_id: str | None = None
    chain_step: int | None = None
    unique_key: str | None = None
    #: Other jobs wait for this one (checked in one round trip per recorder batch).
    awaited: bool = True


def finished_jobs(session: Session, hub: Hub, job_ids: Sequence[str]) -> list[Finished]:
    """Of `job_ids`, the terminal ones that belong to a batch or chain, hold a lock or are awaited."""
    if not job_ids:
        return []
    awaited = set(hub.awaited(job_ids))
    involved = or_(
        JobExecution.batch_id.is_not(None),
        JobExecution.chain_id.is_not(None),
        JobExecution.unique_key.is_not(None),
        JobExecution.id.in_(awaited) if awaited else false(),
    )
    rows = session.execute(
        select(
            JobExecution.id,
            JobExecution.status,
            JobExecution.batch_id,
            JobExecution.chain_id,
            JobExecution.chain_step,
            JobExecution.unique_key,
        ).where(JobExecution.id.in_(list(job_ids)), JobExecution.status.in_(_TERMINAL), involved)
    ).all()
    return [Finished(*row, awaited=row[0] in awaited) for row in rows]


def _reason(job: Finished) -> str:
    if job.chain_id is not None and job.chain_step is not None:
        return f"chain stopped: step {job.chain_step + 1} ({job.id}) {job.status}"
    return f"dependency {job.id} {job.status}"


def follow_up(hub: Hub, jobs: Iterable[Finished]) -> None:
    """Apply the consequences of `jobs` having finished (idempotent)."""
    for job in jobs:
        if job.unique_key:
            hub.release_unique(job.unique_key, job.id)
        if job.batch_id:
            hub.account_batch_job(job.batch_id, job.id, failed=job.status != ExecutionStatus.COMPLETED.value)
        if job.chain_id and job.status == ExecutionStatus.FAILED.value:
            hub.release_chain_catch(job.chain_id)
        if not job.awaited:
            continue
        released, cancelled = hub.resolve(job.id, job.status, _reason(job))
        if released or cancelled:
            logger.info("Job %s %s: released %s, cancelled %s", job.id, job.status, released, cancelled)


def recover_inflight(hub: Hub) -> int:
    """Put back released jobs a drainer took but never confirmed (it died mid-publish)."""
    moved = 0
    while hub.redis.lmove(INFLIGHT, OUTBOX, "LEFT", "LEFT") is not None:
        moved += 1
    return moved


def drain_outbox(
    hub: Hub,
    publisher: Publisher,
    result_of: Callable[[str], Any],
    on_unpublishable: Callable[[str, str], None],
    limit: int = 1000,
) -> int:
    """Publish released jobs; returns how many. `result_of(job_id)` feeds chain steps.

    An entry leaves the in-flight list only after its publish succeeded, so a crash
    publishes it again on recovery rather than losing it.
    """
    published = 0
    while published < limit:
        raw = cast(Any, hub.redis.lmove(OUTBOX, INFLIGHT, "LEFT", "RIGHT"))
        if raw is None:
            break
        entry = json.loads(cast(bytes, raw))
        spec = json.loads(entry["spec"])
        dep = entry.get("dep")
        try:
            job = from_spec(spec, result_of(dep) if dep and spec.get("pass_result") else None)
        except Exception as exc:  # an unreadable spec must not block the ones behind it
            logger.exception("Released job %s could not be rebuilt", spec.get("job_id"))
            on_unpublishable(str(spec.get("job_id")), f"could not be queued: {exc}")
        else:
            try:
                publisher.publish(job)
            except Exception:
                # The broker is down: back to the front of the outbox for the next drain.
                pipe = hub.redis.pipeline(transaction=True)
                pipe.lrem(INFLIGHT, 1, raw)
                pipe.lpush(OUTBOX, raw)
                pipe.execute()
                raise
        hub.redis.lrem(INFLIGHT, 1, raw)
        published += 1
    return published
