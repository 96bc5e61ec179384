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
from typing import Any, cast

from app import redis_keys
from app.composition.hub import Hub
from app.composition.specs import from_spec
from app.kernel.ports import Publisher
from app.kernel.row_batch import Finished
from app.models import ExecutionStatus

logger = logging.getLogger(__name__)


def involved(hub: Hub, finished: Sequence[Finished]) -> list[tuple[Finished, bool]]:
    """Of `finished`, those with follow-ups: in a batch or chain, holding a lock, or awaited.

    One SMISMEMBER for the whole list: jobs with none of these cost nothing more.
    Returns (job, awaited) pairs.
    """
    awaited = set(hub.awaited([job.id for job in finished]))
    return [
        (job, job.id in awaited)
        for job in finished
        if job.id in awaited or job.batch_id or job.chain_id or job.unique_key
    ]


def _reason(job: Finished) -> str:
    if job.chain_id is not None and job.chain_step is not None:
        return f"chain stopped: step {job.chain_step + 1} ({job.id}) {job.status}"
    return f"dependency {job.id} {job.status}"


def follow_up(
    hub: Hub,
    jobs: Iterable[tuple[Finished, bool]],
    on_lost_batch: Callable[[str], Any] | None = None,
    on_lost_catch: Callable[[str], Any] | None = None,
) -> None:
    """Apply the consequences of `jobs` having finished (idempotent); pairs of (job, awaited).

    `on_lost_batch(batch_id)` / `on_lost_catch(chain_id)`: called when Redis no longer has a
    batch's counters, or a failed chain step's catch (app.composition.resync rebuilds them).
    """
    for job, awaited in jobs:
        if job.unique_key:
            hub.release_unique(job.unique_key, job.id)
        if job.batch_id:
            counted = hub.account_batch_job(job.batch_id, job.id, failed=job.status != ExecutionStatus.COMPLETED.value)
            if counted is None and on_lost_batch is not None:
                on_lost_batch(job.batch_id)
        if job.chain_id and job.status == ExecutionStatus.FAILED.value:
            if not hub.release_chain_catch(job.chain_id) and on_lost_catch is not None:
                on_lost_catch(job.chain_id)
        if not awaited:
            continue
        released, cancelled = hub.resolve(job.id, job.status, _reason(job))
        if released or cancelled:
            logger.info("Job %s %s: released %s, cancelled %s", job.id, job.status, released, cancelled)


def recover_inflight(hub: Hub) -> int:
    """Put back released jobs a drainer took but never confirmed (it died mid-publish)."""
    moved = 0
    while hub.redis.lmove(redis_keys.OUTBOX_INFLIGHT, redis_keys.OUTBOX, "LEFT", "LEFT") is not None:
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
        raw = cast(Any, hub.redis.lmove(redis_keys.OUTBOX, redis_keys.OUTBOX_INFLIGHT, "LEFT", "RIGHT"))
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
                pipe.lrem(redis_keys.OUTBOX_INFLIGHT, 1, raw)
                pipe.lpush(redis_keys.OUTBOX, raw)
                pipe.execute()
                raise
        hub.redis.lrem(redis_keys.OUTBOX_INFLIGHT, 1, raw)
        published += 1
    return published
