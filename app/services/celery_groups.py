"""Celery groups and chords as Celeriac recorded them (the console's group page).

A group's members carry its id in `group_id` (from the message's `group` and
`group_index` headers, see app.kernel.canvas_relations); a chord's header tasks are such a
group. Their messages name the chord's callback (the canvas link "chord", kept in the
row's `message`); the callback's own row names the header's group id as its `parent_id`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import TERMINAL_STATUSES, JobExecution
from celeriac.canvas import entry_ids

#: Most members listed on one page (a group is a fixed fan-out; larger ones are counted).
MAX_MEMBERS = 1_000


@dataclass(frozen=True)
class ChordCallback:
    """The task a chord runs once its header finished; `row` once it was recorded."""

    job_id: str | None
    task: str
    row: JobExecution | None


@dataclass(frozen=True)
class GroupView:
    group_id: str
    members: list[JobExecution]
    counts: dict[str, int] = field(default_factory=dict)
    callback: ChordCallback | None = None
    #: The job whose run sent the group (a chain's step before it), if the members name one.
    parent_id: str | None = None

    @property
    def total(self) -> int:
        return len(self.members)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(status.value, 0) for status in TERMINAL_STATUSES)


def chord_callback_of(row: JobExecution) -> tuple[str | None, str] | None:
    """(job id, task name) of the chord callback a member's message names, if any: the task
    the header's completion sends (a callback chain's first step)."""
    links = (row.message or {}).get("links")
    chord: Any = links.get("chord") if isinstance(links, dict) else None
    if not isinstance(chord, dict) or not chord.get("task"):
        return None
    task_id = next(entry_ids(chord), None)
    steps = (chord.get("kwargs") or {}).get("tasks") if chord["task"] == "celery.chain" else None
    task = steps[0].get("task") if isinstance(steps, list) and steps and isinstance(steps[0], dict) else None
    return task_id, str(task or chord["task"])


def get_group(session: Session, group_id: str, tenant_id: str | None) -> GroupView:
    """The members of Celery group `group_id` that `tenant_id` may see (None: all).

    Raises:
        NotFound: no member of the group is recorded for the tenant.
    """
    query = select(JobExecution).where(JobExecution.group_id == group_id)
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
    members = list(session.scalars(query.order_by(JobExecution.created_at, JobExecution.id).limit(MAX_MEMBERS)))
    if not members:
        raise NotFound(f"no group {group_id}")
    callback = _callback(session, members, tenant_id)
    if callback is not None and callback.job_id is not None:
        # Recorded before members-only groups: the callback carried the header's group id.
        members = [m for m in members if m.id != callback.job_id]
    parents = {m.parent_id for m in members}
    parent_id = parents.pop() if len(parents) == 1 else None
    return GroupView(group_id, members, dict(Counter(m.status for m in members)), callback, parent_id)


def kind_of(session: Session, ref: str, tenant_id: str | None) -> Literal["job", "group"] | None:
    """What `ref` (a parent_id or root_id) names for `tenant_id`: a job, a Celery group, or nothing."""
    row = session.get(JobExecution, ref)
    if row is not None and (tenant_id is None or row.tenant_id == tenant_id):
        return "job"
    query = select(JobExecution.id).where(JobExecution.group_id == ref)
    if tenant_id is not None:
        query = query.where(JobExecution.tenant_id == tenant_id)
    return "group" if session.scalars(query.limit(1)).first() is not None else None


def _callback(session: Session, members: list[JobExecution], tenant_id: str | None) -> ChordCallback | None:
    """The chord callback the members' messages name, with its row if recorded and visible."""
    for member in members:
        found = chord_callback_of(member)
        if found is None:
            continue
        callback_id, task = found
        row = session.get(JobExecution, callback_id) if callback_id else None
        if row is not None and tenant_id is not None and row.tenant_id != tenant_id:
            row = None
        return ChordCallback(callback_id, task, row)
    return None
