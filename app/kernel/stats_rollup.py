"""Roll old job stats up to a coarser resolution, and delete the oldest (issue 15).

Minute rows older than CELERIAC_STATS_HOURLY_AFTER_HOURS become one row per hour in
`job_stats_hour`; hour rows older than CELERIAC_STATS_DAILY_AFTER_DAYS one row per UTC day
in `job_stats_day`; day rows older than CELERIAC_STATS_RETENTION_DAYS are deleted. Counters
are added, maxima kept, so every sum over whole hours (days) is the same before and after.
The running totals (/metrics) are never touched.

Each bucket moves in one transaction that deletes its source rows and adds exactly the
deleted rows into the target's row (an upsert, adding on conflict), so a rollup run twice,
by two processes at once, or beside a recorder still writing a late minute, counts every
event once:
- PostgreSQL: one statement, `WITH moved AS (DELETE ... RETURNING ...) INSERT ... SELECT
  FROM moved`; the rows are locked in key order first, the order the recorder locks them in.
- SQLite: `INSERT ... SELECT` then `DELETE` of the same range; the first statement takes
  the database's only write lock, so nothing changes the range in between.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.config_stats import StatsRetention
from app.models.base import UTCDateTime
from app.models.job_stats import MAXED_COLUMNS, SUMMED_COLUMNS, JobStatsDay, JobStatsHour, JobStatsMinute

logger = logging.getLogger(__name__)

_KEY = ("tenant_id", "queue", "job_class")
_MINUTES = (JobStatsMinute.__table__, "minute")
_HOURS = (JobStatsHour.__table__, "hour")
_DAYS = (JobStatsDay.__table__, "day")
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class RollupReport:
    #: Minute rows added into hour rows (and deleted).
    minutes: int
    #: Hour rows added into day rows (and deleted).
    hours: int
    #: Day rows past CELERIAC_STATS_RETENTION_DAYS, deleted.
    days_purged: int


def _floor(moment: datetime, span: timedelta) -> datetime:
    """The start of the hour or (UTC) day holding `moment`."""
    moment = moment.astimezone(UTC)
    if span == _DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


#: The target bucket moved in one transaction: source rows from `start` to before `end`.
_START = bindparam("start", type_=UTCDateTime())
_END = bindparam("end", type_=UTCDateTime())


def _pk(table: Any) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def _aggregated(source: Any) -> Any:
    """The source rows as one row per key, starting at the bucket's start."""
    sums = [func.sum(source.c[name]) for name in SUMMED_COLUMNS]
    maxima = [func.max(source.c[name]) for name in MAXED_COLUMNS]
    keys = [source.c[name] for name in _KEY]
    return select(_START, *keys, *sums, *maxima).group_by(*keys)


def _adding(insert: Any, table: Any) -> Any:
    """ON CONFLICT: counters added, maxima kept."""
    excluded = insert.excluded
    updates: dict[str, Any] = {name: table.c[name] + excluded[name] for name in SUMMED_COLUMNS}
    for name in MAXED_COLUMNS:
        updates[name] = case((excluded[name] > table.c[name], excluded[name]), else_=table.c[name])
    return insert.on_conflict_do_update(index_elements=[table.c[target] for target in _pk(table)], set_=updates)


def _moves(dialect: str, source: Any, bucket: str, target: Any) -> list[Any]:
    """The statements moving one bucket (built once per level, run with `start` and `end`)."""
    in_range = (source.c[bucket] >= _START, source.c[bucket] < _END)
    names = _pk(target) + list(SUMMED_COLUMNS + MAXED_COLUMNS)
    if dialect != "postgresql":
        rows = _aggregated(source).where(*in_range)
        return [_adding(sqlite_insert(target).from_select(names, rows), target), delete(source).where(*in_range)]
    key = tuple_(*(source.c[name] for name in _pk(source)))
    # Byte order ("C"): the order the recorder's Python-sorted upserts lock rows in.
    order = [column.collate("C") if column.name in _KEY else column for column in key.clauses]
    locked = select(*key.clauses).where(*in_range).order_by(*order).with_for_update()
    moved = delete(source).where(*in_range, key.in_(locked)).returning(*source.c).cte("moved")
    written = _adding(pg_insert(target).from_select(names, _aggregated(moved)), target).cte("written")
    return [select(func.count()).select_from(moved).add_cte(written)]


def _move(session: Session, source: tuple[Any, str], target: tuple[Any, str], span: timedelta, cutoff: datetime) -> int:
    """Move every `source` row older than `cutoff` into `target`, one target bucket per transaction."""
    table, bucket = source
    statements = _moves(session.get_bind().dialect.name, table, bucket, target[0])
    moved = 0
    while True:
        oldest = session.scalar(select(func.min(table.c[bucket])).where(table.c[bucket] < cutoff))
        session.commit()  # the move starts a fresh transaction (on SQLite: with the write lock)
        if oldest is None:
            return moved
        bounds = {"start": _floor(oldest, span), "end": _floor(oldest, span) + span}
        *first, last = statements
        for statement in first:
            session.execute(statement, bounds)
        result: Any = session.execute(last, bounds)
        # PostgreSQL: the statement counts the rows it moved; SQLite: the DELETE's row count.
        count = int(result.scalar() or 0) if result.returns_rows else int(result.rowcount)
        session.commit()
        if not count:  # another process moved the bucket (and goes on), or it cannot move: never loop
            return moved
        moved += count


def roll_up(session: Session, config: StatsRetention, now: datetime | None = None) -> RollupReport:
    """Roll minutes into hours and hours into days past their ages, then delete the oldest days.

    Commits as it goes (one short transaction per hour or day moved); safe to run at any time,
    several times, from several processes.
    """
    now = now or datetime.now(UTC)
    minutes = _move(session, _MINUTES, _HOURS, _HOUR, _floor(now - timedelta(hours=config.hourly_after_h), _HOUR))
    hours = _move(session, _HOURS, _DAYS, _DAY, _floor(now - timedelta(days=config.daily_after_days), _DAY))
    purged = 0
    if config.keep_days:
        table, bucket = _DAYS
        oldest_kept = _floor(now - timedelta(days=config.keep_days), _DAY)
        result = session.execute(delete(table).where(table.c[bucket] < oldest_kept))
        purged = int(result.rowcount)  # type: ignore[attr-defined]
        session.commit()
    report = RollupReport(minutes, hours, purged)
    logger.info(
        "Stats: %d minute rows rolled into hours, %d hour rows into days, %d day rows deleted", minutes, hours, purged
    )
    return report
