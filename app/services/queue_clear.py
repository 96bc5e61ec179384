"""Clearing a queue (Laravel's `queue:clear`): what waits in it goes, and its jobs end `cancelled`.

What a clear takes, of one tenant's jobs (None: every tenant's):
- the queue's messages in the Redis broker, in every priority sub-list kombu keeps for it
  (`queue_stats.broker_queue_keys`); a message with no job row counts as the tenant its
  `celeriac` header names, else the default tenant (as the queue page shows it);
- the queue's jobs Celeriac holds in its scheduled set for a long delay or retry backoff
  (app.kernel.scheduled): they are the queue's delayed jobs, which Laravel's clear takes too.

What it leaves: messages a worker took already (prefetched, or a retry waiting out a short
ETA in the worker's memory) run, unless cancelled one by one; jobs waiting for dependencies
or an earlier chain step are not on the queue yet.

Each message is removed on its own (LREM, one Lua call per chunk), so a message a worker
takes meanwhile is not removed and its job, which now runs, is not cancelled. Then the job
is marked cancelled for workers, its row ends `cancelled` with the reason through the
kernel's writer, and the recorder hears it (batches, chains and dependants follow). If this
process dies between the two, the reconciler finds those jobs' messages gone and publishes
them again: they run, none is lost.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.kernel import writer
from app.kernel.ports import Canceller
from app.kernel.queue_defaults import check_queue_name
from app.kernel.scheduled import WAITING
from app.models import JobExecution
from app.monitoring.queue_stats import broker_queue_keys
from celeriac import header

#: Messages read (and removed) per round trip, and held jobs cancelled per query.
CHUNK = 200

#: Remove each message given (ARGV) once, searching from the front of the line (the list's
#: right end, where the chunk was read); 1 for each one removed, 0 for one a worker took.
_REMOVE = """
local removed = {}
for i = 1, #ARGV do
  removed[i] = redis.call('LREM', KEYS[1], -1, ARGV[i])
end
return removed
"""


@dataclass(frozen=True)
class ClearPreview:
    """What a clear would take now: `messages` in the broker, `held` jobs in the scheduled set."""

    queue: str
    messages: int
    held: int

    @property
    def total(self) -> int:
        return self.messages + self.held


@dataclass
class ClearOutcome:
    queue: str
    #: Messages removed from the broker's lists.
    removed: int = 0
    #: Held jobs (scheduled set) cancelled.
    held: int = 0
    #: Job rows ended `cancelled` (removed messages of jobs Celeriac knows, and held jobs).
    cancelled: int = 0
    #: The time budget ran out first: clear again for the rest.
    truncated: bool = False

    @property
    def cleared(self) -> int:
        return self.removed + self.held

    def as_dict(self) -> dict[str, Any]:
        return {
            "cleared": self.cleared,
            "removed": self.removed,
            "held": self.held,
            "cancelled": self.cancelled,
            "truncated": self.truncated,
        }

    def message(self) -> str:
        text = (
            f"Queue {self.queue}: cleared {self.cleared:,} ({self.removed:,} message(s) removed from the broker, "
            f"{self.held:,} held job(s)); {self.cancelled:,} job(s) cancelled."
        )
        return text + (" More was waiting than one call clears: clear again for the rest." if self.truncated else "")


def _read_message(raw: bytes) -> tuple[str | None, str | None]:
    """A message's job id and the tenant its `celeriac` header names (each None when absent)."""
    try:
        message = json.loads(raw)
        headers = message.get("headers") if isinstance(message, dict) else None
    except ValueError:
        return None, None
    if not isinstance(headers, dict):
        return None, None
    own = header.read(headers) or {}
    job_id = str(headers["id"]) if headers.get("id") else None
    tenant = own.get("tenant") if isinstance(own.get("tenant"), str) else None
    return job_id, tenant


class _Owners:
    """Whose each message is: its row's tenant, else its header's, else the default tenant."""

    def __init__(self, session: Session, tenant_id: str | None, default_tenant: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.default_tenant = default_tenant

    def owned(self, raws: Sequence[bytes]) -> list[tuple[bytes, str | None]]:
        """The messages of `raws` the tenant owns, each with its job id."""
        parsed = [(raw, *_read_message(raw)) for raw in raws]
        if self.tenant_id is None:
            return [(raw, job_id) for raw, job_id, _ in parsed]
        ids = [job_id for _, job_id, _ in parsed if job_id]
        rows: dict[str, str] = {}
        if ids:
            query = select(JobExecution.id, JobExecution.tenant_id).where(JobExecution.id.in_(ids))
            rows = {row.id: row.tenant_id for row in self.session.execute(query)}
        return [
            (raw, job_id)
            for raw, job_id, named in parsed
            if (rows.get(job_id or "") or named or self.default_tenant) == self.tenant_id
        ]


class _FrontReader:
    """One broker list read from the front of the line (its right end), CHUNK at a time.

    Reads at most as many messages as the list held at the start (producers keep adding at
    the other end). The caller says how many of each chunk stay in the list (`kept`): the
    next chunk starts past them.
    """

    def __init__(self, redis: Any, key: str) -> None:
        self.redis = redis
        self.key = key
        self.left = int(redis.llen(key))
        self.kept = 0

    def chunks(self) -> Iterator[list[bytes]]:
        while self.left > 0:
            size = min(CHUNK, self.left)
            raws = self.redis.lrange(self.key, -(self.kept + size), -(self.kept + 1))
            if not raws:
                return
            self.left -= len(raws)
            raws.reverse()
            yield raws


def _check(queue: str) -> list[str]:
    check_queue_name(queue)
    return broker_queue_keys(queue)


def _held_query(queue: str, tenant_id: str | None) -> list[Any]:
    where: list[Any] = [
        JobExecution.due_at.is_not(None),
        JobExecution.queue == queue,
        JobExecution.status.in_(WAITING),
    ]
    if tenant_id is not None:
        where.append(JobExecution.tenant_id == tenant_id)
    return where


def preview(session: Session, redis: Any, queue: str, tenant_id: str | None, default_tenant: str) -> ClearPreview:
    """Count what `clear` would take now (every tenant: the lists' lengths; one tenant: each
    message's owner is read, as the clear reads it).

    Raises:
        ValidationError: not a valid queue name.
    """
    keys = _check(queue)
    if tenant_id is None:
        messages = sum(int(redis.llen(key)) for key in keys)
    else:
        owners = _Owners(session, tenant_id, default_tenant)
        messages = 0
        for key in keys:
            reader = _FrontReader(redis, key)
            for raws in reader.chunks():
                messages += len(owners.owned(raws))
                reader.kept += len(raws)
    counted = select(func.count()).select_from(JobExecution).where(*_held_query(queue, tenant_id))
    held = int(session.scalar(counted) or 0)
    return ClearPreview(queue, messages, held)


class _Deadline:
    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.monotonic() + seconds

    def passed(self) -> bool:
        return self.at is not None and time.monotonic() >= self.at


def _cancel(session: Session, canceller: Canceller, job_id: str, why: str) -> bool:
    """End a live job `cancelled` as cancel_job does (mark, row, announce), without a revoke:
    no worker holds its message. Returns whether it was live.

    The mark stays even when the row had ended (a stray copy of a finished job's message):
    any other copy a worker meets is skipped.
    """
    canceller.mark_cancelled(job_id)
    if not writer.end_job(session, writer.cancel_event(job_id, why), None):
        return False
    canceller.announce(job_id, why)
    return True


def clear(
    session: Session,
    redis: Any,
    canceller: Canceller,
    queue: str,
    tenant_id: str | None,
    *,
    default_tenant: str,
    reason: str | None = None,
    time_budget_s: float | None = None,
) -> ClearOutcome:
    """Remove the tenant's messages from `queue`'s broker lists and cancel their jobs, then
    cancel the tenant's jobs held for the queue in the scheduled set (see the module's doc).

    `time_budget_s` (None: no limit) stops it between two chunks; the outcome says so.

    Raises:
        ValidationError: not a valid queue name.
    """
    keys = _check(queue)
    why = f"queue {queue} cleared" + (f": {reason}" if reason else "")
    outcome = ClearOutcome(queue)
    deadline = _Deadline(time_budget_s)
    owners = _Owners(session, tenant_id, default_tenant)
    remove = redis.register_script(_REMOVE)
    for key in keys:
        reader = _FrontReader(redis, key)
        for raws in reader.chunks():
            owned = owners.owned(raws)
            hits = remove(keys=[key], args=[raw for raw, _ in owned]) if owned else []
            reader.kept += len(raws) - len(owned)  # owned ones left the list: removed here, or taken
            for (_, job_id), hit in zip(owned, hits, strict=True):
                if not int(hit):
                    continue
                outcome.removed += 1
                if job_id and _cancel(session, canceller, job_id, why):
                    outcome.cancelled += 1
            if deadline.passed():
                outcome.truncated = True
                return outcome
    _clear_held(session, canceller, queue, tenant_id, why, outcome, deadline)
    return outcome


def _clear_held(
    session: Session,
    canceller: Canceller,
    queue: str,
    tenant_id: str | None,
    why: str,
    outcome: ClearOutcome,
    deadline: _Deadline,
) -> None:
    after = ""
    where = _held_query(queue, tenant_id)
    while True:
        ids = list(
            session.scalars(
                select(JobExecution.id).where(*where, JobExecution.id > after).order_by(JobExecution.id).limit(CHUNK)
            )
        )
        session.commit()  # end the read before each row's own write transaction
        if not ids:
            return
        after = ids[-1]
        for job_id in ids:
            if _cancel(session, canceller, job_id, why):
                outcome.held += 1
                outcome.cancelled += 1
        if deadline.passed():
            outcome.truncated = True
            return
