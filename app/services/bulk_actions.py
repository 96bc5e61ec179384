"""Retry or cancel many jobs at once (U2): a selection, a search's matches, a failure group.

Each action is bounded: at most MAX_BULK jobs and a time budget per call, read in keyset
chunks of CHUNK (newest first, so retries created meanwhile are never revisited), each job
committed on its own by app.services.jobs. What is left is reported (`truncated`), and the
same action run again carries on. Retries skip jobs that were retried already, so running
an action twice never runs a job twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, exists, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from app.composition.submit import retry_job
from app.config import Settings
from app.errors import BackendUnavailable, Conflict, NotFound, ValidationError
from app.kernel.cancel import cancel_job
from app.kernel.ports import Canceller, Publisher, Registry
from app.models import ExecutionStatus, JobExecution
from app.services import job_search
from app.services.deferred_revokes import DeferredRevokes

logger = logging.getLogger(__name__)

#: Most jobs one bulk action touches; run it again for the rest.
MAX_BULK = 10_000
#: Job ids read per query.
CHUNK = 200
#: Most jobs a selection may hold (a page of the list is at most 200).
MAX_SELECTED = 500
#: Seconds one action may run before it stops and reports what is left.
TIME_BUDGET_S = 25.0

ACTIONS = ("retry", "cancel")
#: What an action did, as its outcome reports it.
VERBS = {"retry": "retried", "cancel": "cancelled", "purge": "purged"}


@dataclass
class BulkOutcome:
    """What a bulk action did: `done` retried or cancelled, `skipped` left alone."""

    action: str
    done: int = 0
    skipped: int = 0
    #: More jobs matched than this call handled (the cap or the time budget): run it again.
    truncated: bool = False
    #: Why the action stopped early (the broker went away), if it did.
    error: str | None = None
    new_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        verb = VERBS.get(self.action, self.action)
        return {verb: self.done, "skipped": self.skipped, "truncated": self.truncated, "error": self.error}

    def message(self) -> str:
        verb = VERBS.get(self.action, self.action).capitalize()
        text = f"{verb} {self.done}, skipped {self.skipped}."
        if self.truncated:
            text += " More jobs match than one action handles: run it again for the rest."
        if self.error:
            text += f" Stopped early: {self.error}"
        return text


@dataclass(frozen=True)
class Preview:
    """How many jobs an action on a search would touch, counted up to MAX_BULK + 1."""

    action: str
    count: int
    statuses: tuple[str, ...]
    #: Counted in full: the action runs as a bulk job (app.services.bulk_jobs), with no cap.
    unbounded: bool = False
    #: A few of the ids, newest first (bulk job previews).
    sample: tuple[str, ...] = ()

    @property
    def capped(self) -> bool:
        return not self.unbounded and self.count > MAX_BULK

    @property
    def will_touch(self) -> int:
        return self.count if self.unbounded else min(self.count, MAX_BULK)


def statuses_for(action: str) -> tuple[str, ...]:
    """The statuses `action` applies to.

    Raises:
        ValidationError: an unknown action.
    """
    if action == "retry":
        return job_search.RETRYABLE
    if action == "cancel":
        return job_search.CANCELLABLE
    raise ValidationError(f"unknown bulk action {action!r}; choose retry or cancel")


def not_retried() -> ColumnElement[bool]:
    """No execution names this one in `retry_of` (uses the retry_of index)."""
    retry = aliased(JobExecution)
    return ~exists(select(retry.id).where(retry.retry_of == JobExecution.id))


def scope(query: job_search.JobQuery, action: str) -> list[ColumnElement[bool]]:
    where = job_search.conditions(query)
    where.append(JobExecution.status.in_(statuses_for(action)))
    if action == "retry":
        where.append(not_retried())
    return where


def preview(session: Session, query: job_search.JobQuery, action: str) -> Preview:
    """The jobs an action on everything matching `query` would touch (only its statuses).

    Raises:
        ValidationError: an unknown action.
    """
    matching = select(JobExecution.id).where(*scope(query, action)).limit(MAX_BULK + 1).subquery()
    count = int(session.scalar(select(func.count()).select_from(matching)) or 0)
    return Preview(action, count, statuses_for(action))


def chunks_of(
    session: Session, where: Sequence[ColumnElement[bool]], limit: int, outcome: BulkOutcome
) -> Iterator[list[str]]:
    """Ids matching `where`, newest first, CHUNK at a time, at most `limit` in all.

    Marks `outcome` truncated when more than `limit` match.
    """
    j = JobExecution
    after: tuple[datetime, str] | None = None
    given = 0
    while True:
        page_where = list(where)
        if after is not None:
            page_where.append(tuple_(j.created_at, j.id) < tuple_(*after))
        size = min(CHUNK, limit - given)
        if size == 0:
            if session.execute(select(j.id).where(*page_where).limit(1)).first() is not None:
                outcome.truncated = True
            return
        rows = session.execute(
            select(j.id, j.created_at).where(*page_where).order_by(j.created_at.desc(), j.id.desc()).limit(size)
        ).all()
        if not rows:
            return
        after = (rows[-1][1], rows[-1][0])
        given += len(rows)
        yield [r[0] for r in rows]


class Budget:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.deadline = clock() + seconds

    def spent(self) -> bool:
        return self.clock() >= self.deadline


def retry_each(
    session: Session,
    chunks: Iterable[list[str]],
    tenant_id: str | None,
    outcome: BulkOutcome,
    budget: Budget,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> BulkOutcome:
    for ids in chunks:
        retried_before = set(session.scalars(select(JobExecution.retry_of).where(JobExecution.retry_of.in_(ids))))
        for job_id in ids:
            if job_id in retried_before:
                outcome.skipped += 1
                continue
            try:
                row = retry_job(session, job_id, tenant_id, registry=registry, publisher=publisher, settings=settings)
            except (ValidationError, Conflict, NotFound) as exc:
                session.rollback()
                logger.info("Bulk retry: job %s skipped: %s", job_id, exc)
                outcome.skipped += 1
                continue
            except BackendUnavailable as exc:
                outcome.error = str(exc)
                return outcome
            outcome.done += 1
            outcome.new_ids.append(row.id)
        if budget.spent():
            outcome.truncated = True
            return outcome
    return outcome


def cancel_each(
    session: Session,
    chunks: Iterable[list[str]],
    tenant_id: str | None,
    outcome: BulkOutcome,
    budget: Budget,
    canceller: Canceller,
) -> BulkOutcome:
    for ids in chunks:
        try:
            for job_id in ids:
                try:
                    cancel_job(session, job_id, tenant_id, canceller=canceller)
                except (Conflict, NotFound) as exc:
                    session.rollback()
                    logger.info("Bulk cancel: job %s skipped: %s", job_id, exc)
                    outcome.skipped += 1
                    continue
                outcome.done += 1
        finally:
            if isinstance(canceller, DeferredRevokes):
                canceller.flush()
        if budget.spent():
            outcome.truncated = True
            return outcome
    return outcome


def _selected(ids: Sequence[str]) -> list[str]:
    """Distinct ids in their order.

    Raises:
        ValidationError: none, or more than MAX_SELECTED.
    """
    unique = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not unique:
        raise ValidationError("select at least one job")
    if len(unique) > MAX_SELECTED:
        raise ValidationError(f"select at most {MAX_SELECTED} jobs; use the action on all matching jobs instead")
    return unique


def retry_selected(
    session: Session,
    ids: Sequence[str],
    tenant_id: str | None,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
) -> BulkOutcome:
    """Retry the chosen jobs; those not failed or cancelled, retried before, or not the
    tenant's are skipped.

    Raises:
        ValidationError: no ids, or too many.
    """
    chosen = _selected(ids)
    chunks = (chosen[i : i + CHUNK] for i in range(0, len(chosen), CHUNK))
    outcome = BulkOutcome("retry")
    return retry_each(
        session,
        chunks,
        tenant_id,
        outcome,
        Budget(TIME_BUDGET_S),
        registry=registry,
        publisher=publisher,
        settings=settings,
    )


def cancel_selected(
    session: Session, ids: Sequence[str], tenant_id: str | None, *, canceller: Canceller
) -> BulkOutcome:
    """Cancel the chosen jobs; finished ones and other tenants' are skipped.

    Raises:
        ValidationError: no ids, or too many.
    """
    chosen = _selected(ids)
    chunks = (chosen[i : i + CHUNK] for i in range(0, len(chosen), CHUNK))
    return cancel_each(session, chunks, tenant_id, BulkOutcome("cancel"), Budget(TIME_BUDGET_S), canceller)


def retry_matching(
    session: Session,
    query: job_search.JobQuery,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    limit: int = MAX_BULK,
    time_budget_s: float = TIME_BUDGET_S,
) -> BulkOutcome:
    """Retry every failed or cancelled job matching `query` not retried already."""
    outcome = BulkOutcome("retry")
    chunks = chunks_of(session, scope(query, "retry"), limit, outcome)
    return retry_each(
        session,
        chunks,
        query.tenant_id,
        outcome,
        Budget(time_budget_s),
        registry=registry,
        publisher=publisher,
        settings=settings,
    )


def cancel_matching(
    session: Session,
    query: job_search.JobQuery,
    *,
    canceller: Canceller,
    limit: int = MAX_BULK,
    time_budget_s: float = TIME_BUDGET_S,
) -> BulkOutcome:
    """Cancel every pending, retrying or running job matching `query`."""
    outcome = BulkOutcome("cancel")
    chunks = chunks_of(session, scope(query, "cancel"), limit, outcome)
    return cancel_each(session, chunks, query.tenant_id, outcome, Budget(time_budget_s), canceller)


def group_scope(tenant_id: str, fingerprint: str) -> list[ColumnElement[bool]]:
    """Failed executions of a failure group not retried yet (ix_exec_tenant_fingerprint)."""
    return [
        JobExecution.tenant_id == tenant_id,
        JobExecution.fingerprint == fingerprint,
        JobExecution.status == ExecutionStatus.FAILED.value,
        not_retried(),
    ]


def retry_failure_group(
    session: Session,
    tenant_id: str,
    fingerprint: str,
    *,
    registry: Registry,
    publisher: Publisher,
    settings: Settings,
    limit: int = MAX_BULK,
    time_budget_s: float = TIME_BUDGET_S,
) -> BulkOutcome:
    """Retry the failed jobs of one failure group (one tenant's fingerprint) not retried yet."""
    outcome = BulkOutcome("retry")
    chunks = chunks_of(session, group_scope(tenant_id, fingerprint), limit, outcome)
    return retry_each(
        session,
        chunks,
        tenant_id,
        outcome,
        Budget(time_budget_s),
        registry=registry,
        publisher=publisher,
        settings=settings,
    )


def count_group_retryable(session: Session, tenant_id: str, fingerprint: str) -> int:
    """Failed jobs of the group a retry would run again, counted up to MAX_BULK + 1."""
    ids = select(JobExecution.id).where(*group_scope(tenant_id, fingerprint)).limit(MAX_BULK + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(ids)) or 0)
