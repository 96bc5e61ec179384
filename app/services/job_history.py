"""One job's story for the console's detail page: attempts timeline, retry lineage, timings.

Reads the job's own row, its `job_attempts`, and rows linked by `retry_of` (indexed) or
`depends_on` (primary keys): a handful of indexed lookups per page view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ExecutionStatus, JobAttempt, JobExecution
from app.monitoring.planner import dialect_of, rare

#: Most executions followed along a retry lineage, in each direction.
MAX_LINEAGE = 25


@dataclass(frozen=True)
class Event:
    """One line of the timeline: what happened, when, and to which status it led."""

    at: datetime
    label: str
    status: str
    detail: str | None = None
    worker: str | None = None
    runtime_ms: int | None = None
    #: A related job the line links to (the retry it became).
    job_id: str | None = None


@dataclass
class Lineage:
    """The retries before this execution (oldest first) and after it (in creation order)."""

    ancestors: list[JobExecution] = field(default_factory=list)
    descendants: list[JobExecution] = field(default_factory=list)


def attempts(session: Session, job_id: str) -> list[JobAttempt]:
    return list(
        session.scalars(select(JobAttempt).where(JobAttempt.execution_id == job_id).order_by(JobAttempt.number))
    )


def lineage(session: Session, row: JobExecution) -> Lineage:
    """Follow `retry_of` up (the job this one retried, and so on) and down (its retries)."""
    out = Lineage()
    seen = {row.id}
    parent_id = row.retry_of
    while parent_id and parent_id not in seen and len(out.ancestors) < MAX_LINEAGE:
        parent = session.get(JobExecution, parent_id)
        if parent is None or parent.tenant_id != row.tenant_id:
            break
        seen.add(parent.id)
        out.ancestors.insert(0, parent)
        parent_id = parent.retry_of
    frontier = [row.id]
    dialect = dialect_of(session)
    while frontier and len(out.descendants) < MAX_LINEAGE:
        children = list(
            session.scalars(
                select(JobExecution)
                # Marked rare for SQLite's planner, which otherwise walks the tenant's whole
                # (tenant, created_at) index for the ORDER BY (2 s at a million rows).
                .where(rare(JobExecution.retry_of.in_(frontier), dialect), JobExecution.tenant_id == row.tenant_id)
                .order_by(JobExecution.created_at)
                .limit(MAX_LINEAGE)
            )
        )
        children = [c for c in children if c.id not in seen]
        seen.update(c.id for c in children)
        out.descendants.extend(children[: MAX_LINEAGE - len(out.descendants)])
        frontier = [c.id for c in children]
    return out


def dependencies(session: Session, row: JobExecution) -> list[tuple[str, str | None]]:
    """(job id, status) of each job this one waits for; status None: not visible or gone."""
    ids = list(row.depends_on or [])
    if not ids:
        return []
    found = dict(
        session.execute(
            select(JobExecution.id, JobExecution.status).where(
                JobExecution.id.in_(ids), JobExecution.tenant_id == row.tenant_id
            )
        ).all()
    )
    return [(i, found.get(i)) for i in ids]


def wait_ms(row: JobExecution) -> int | None:
    """Time from creation (or its ETA, if later) to the first start: the queue wait."""
    if row.started_at is None:
        return None
    ready = max(row.created_at, row.eta) if row.eta is not None else row.created_at
    return max(int((row.started_at - ready).total_seconds() * 1000), 0)


def finished_at(row: JobExecution) -> datetime | None:
    return row.completed_at or row.failed_at or row.cancelled_at


#: Timeline labels of the notes the recorder and the reconciler leave (app.kernel.apply).
_NOTE_LABELS = ("Worker lost", "Published again", "Outcome recovered")


def _note_time(note: dict[str, object], row: JobExecution) -> datetime:
    raw = note.get("at")
    try:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else row.updated_at
    except ValueError:
        return row.updated_at


def timeline(row: JobExecution, runs: list[JobAttempt], retries: list[JobExecution]) -> list[Event]:
    """created → queued / waiting → each attempt's start and end → outcome → retried as."""
    events = [Event(row.created_at, "Created", ExecutionStatus.PENDING.value)]
    if row.depends_on:
        events.append(Event(row.created_at, "Waiting for dependencies", "pending", f"{len(row.depends_on)} job(s)"))
    if row.eta is not None and row.eta > row.created_at:
        events.append(Event(row.eta, "Due (delayed until)", "pending"))
    for run in runs:
        events.append(Event(run.started_at, f"Attempt {run.number} started", "processing", worker=run.worker_id))
        if run.finished_at is not None:
            label = {"retrying": f"Attempt {run.number} failed, will retry"}.get(
                run.status, f"Attempt {run.number} {run.status}"
            )
            events.append(Event(run.finished_at, label, run.status, run.error_message, run.worker_id, run.runtime_ms))
    end = finished_at(row)
    if end is not None and row.status in {s.value for s in ExecutionStatus if s.is_terminal}:
        detail = row.error_message if row.status != ExecutionStatus.COMPLETED.value else None
        if runs and detail == runs[-1].error_message:
            detail = None  # the last attempt's line already says it
        events.append(Event(end, row.status.capitalize(), row.status, detail))
    for note in row.notes or []:
        at = _note_time(note, row)
        text = str(note.get("text") or "")
        label = next((name for name in _NOTE_LABELS if text.startswith(name)), "Note")
        events.append(Event(at, label, "warning", text))
    for retry in retries:
        if retry.retry_of == row.id:
            events.append(Event(retry.created_at, "Retried as a new job", retry.status, job_id=retry.id))
    return sorted(events, key=lambda e: e.at)
