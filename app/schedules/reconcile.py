"""Repair drift between `job_schedules` (the record) and RedBeat's entries, both ways.

Run when beat starts (app.schedules.beat) and from `flask schedules reconcile`. An entry
without a row is deleted; a row without a correct entry gets one. A pending tick that
is still valid is kept even if it is in the past, so the first fire after an outage sees
the ticks that were missed instead of silently starting from now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.kernel.ports import PAUSED_SCORE, ScheduleEntry, ScheduleStore
from app.models import JobSchedule
from app.schedules.cron import CronSchedule
from app.schedules.firing import schedule_of

logger = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.written)} entries written, {len(self.deleted)} orphans deleted, {len(self.invalid)} invalid"


def reconcile(session: Session, store: ScheduleStore, now: datetime | None = None) -> ReconcileReport:
    """Make every entry match its row; commits the rows' next_run_at."""
    now = now or datetime.now(UTC)
    report = ReconcileReport()
    rows = list(session.scalars(select(JobSchedule)))
    for row in rows:
        entry = store.read(row.id)
        if not row.is_active:
            row.next_run_at = None
            if entry is None or entry.enabled or entry.score != PAUSED_SCORE:
                store.write(row.id, None, enabled=False)
                report.written.append(row.id)
            continue
        try:
            cron = schedule_of(row)
        except ValidationError as exc:  # e.g. a zone removed from tzdata since it was saved
            logger.error("Schedule %s cannot be computed and is left unscheduled: %s", row.id, exc)
            store.write(row.id, None, enabled=False)
            report.invalid.append(row.id)
            continue
        tick = _pending_tick(row, entry, cron, now)
        row.next_run_at = tick
        if entry is None or not entry.enabled or entry.tick != tick or entry.score != int(tick.timestamp()):
            store.write(row.id, tick, enabled=True)
            report.written.append(row.id)
    for orphan in store.ids() - {row.id for row in rows}:
        store.delete(orphan)
        report.deleted.append(orphan)
    session.commit()
    return report


def _pending_tick(row: JobSchedule, entry: ScheduleEntry | None, cron: CronSchedule, now: datetime) -> datetime:
    """The tick the schedule waits for: the entry's, else the row's, if still one of its ticks."""
    for candidate in (entry.tick if entry and entry.enabled else None, row.next_run_at):
        if candidate is not None and cron.is_tick(candidate):
            return candidate
    return cron.next_after(now)
