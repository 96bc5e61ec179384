"""One fire of a schedule's entry: which ticks are due, who owns them, what runs (S4).

A fire names the tick its entry was aligned to. Every tick from there up to now whose job
was not dispatched yet (each tick's job has an id derived from the tick: its row is the
proof) is claimed for the moment of the fire (app.schedules.claims); each won tick at most
MISFIRE_GRACE_S old runs (late,
not missed: beat restarting, a second beat taking over). Older won ticks were missed:
recorded as one history event, and under the `run_once` policy one catch-up job runs if
no on-time tick did. Then row and entry move to the next tick.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.composition.submit import submit
from app.config import Settings
from app.errors import BackendUnavailable, ValidationError
from app.kernel.dispatching import DispatchSpec
from app.kernel.ports import Publisher, Registry, ScheduleStore
from app.models import JobExecution, JobSchedule, ScheduleEvent
from app.models.schedule_event import MISSED, REFUSED
from app.schedules.claims import claim_ticks, release_ticks
from app.schedules.cron import CronSchedule
from app.schedules.options import spec_kwargs

logger = logging.getLogger(__name__)

#: A tick fired at most this late is on time; later ones count as missed.
MISFIRE_GRACE_S = 60
#: Most ticks one fire looks at (the newest ones); a longer outage counts these.
MAX_TICKS = 500
#: Namespace of the ids of ticks' jobs (uuid5 of "<schedule id>:<tick epoch>").
_TICK_NAMESPACE = uuid.UUID("5c0b9c1e-6f3a-4f7e-9d3a-2f1e8c7b6a50")
SKIP = "skip"
RUN_ONCE = "run_once"
POLICIES = (SKIP, RUN_ONCE)


@dataclass(frozen=True)
class Dispatcher:
    """What a fire needs to dispatch a job through `submit`."""

    registry: Registry
    publisher: Publisher
    settings: Settings


@dataclass(frozen=True)
class FireResult:
    job_id: str | None = None
    missed: int = 0
    next_tick: datetime | None = None


def due_ticks(cron: CronSchedule, tick: datetime | None, now: datetime) -> list[datetime]:
    """Ticks in [tick, now], oldest first; at most MAX_TICKS, the newest ones."""
    if tick is None or tick > now:
        return []
    period = cron.next_after(tick) - tick
    start = max(tick, now - period * MAX_TICKS)
    return cron.between(start, now, MAX_TICKS)


def schedule_of(row: JobSchedule) -> CronSchedule:
    return CronSchedule.parse(row.cron_expression, row.timezone)


def fire(
    session: Session,
    store: ScheduleStore,
    client: redis.Redis,
    schedule_id: str,
    tick: datetime | None,
    dispatcher: Dispatcher,
    now: datetime | None = None,
) -> FireResult:
    """Fire `schedule_id` for its entry's `tick`; commits, then aligns the entry."""
    now = now or datetime.now(UTC)
    row = session.get(JobSchedule, schedule_id)
    if row is None:
        store.delete(schedule_id)  # the row is the record: an orphan entry goes
        return FireResult()
    if not row.is_active:
        store.write(schedule_id, None, enabled=False)
        return FireResult()
    cron = schedule_of(row)
    due = due_ticks(cron, tick, now)
    # A tick's job has an id derived from the tick: its row says the tick ran, whoever ran it
    # and whatever happened to that process afterwards.
    todo = [t for t in due if t not in fired_ticks(session, schedule_id, due)]
    won = claim_ticks(client, schedule_id, todo)
    try:
        result = _run_won(session, row, todo, won, now, dispatcher)
        if len(won) < len(todo):
            # Another fire holds some ticks right now (a second beat), or held them and died:
            # the entry stays on this tick, so a later fire finds their rows or takes them.
            session.commit()
            return FireResult(result.job_id, result.missed, row.next_run_at)
        row.next_run_at = cron.next_after(now)
        session.commit()
    except Exception:
        session.rollback()
        release_ticks(client, schedule_id, won)
        raise
    align(session, store, row)
    return FireResult(result.job_id, result.missed, row.next_run_at)


def tick_job_id(schedule_id: str, tick: datetime) -> str:
    """The id of the job a schedule's tick dispatches: the same for every fire of that tick."""
    return str(uuid.uuid5(_TICK_NAMESPACE, f"{schedule_id}:{int(tick.timestamp())}"))


def fired_ticks(session: Session, schedule_id: str, ticks: list[datetime]) -> set[datetime]:
    """Which of `ticks` already dispatched their job (their row exists)."""
    if not ticks:
        return set()
    by_id = {tick_job_id(schedule_id, tick): tick for tick in ticks}
    found = session.scalars(select(JobExecution.id).where(JobExecution.id.in_(list(by_id))))
    return {by_id[job_id] for job_id in found}


def _run_won(
    session: Session,
    row: JobSchedule,
    due: list[datetime],
    won: list[datetime],
    now: datetime,
    dispatcher: Dispatcher,
) -> FireResult:
    """Run each won tick that is on time; the older ones were missed (policy decides)."""
    grace = timedelta(seconds=MISFIRE_GRACE_S)
    on_time = [t for t in won if now - t <= grace]
    missed = [t for t in won if now - t > grace]
    job_id = None
    for tick in on_time:
        job_id = dispatch(session, row, tick, dispatcher) or job_id
    catch_up = bool(missed) and row.missed_fire_policy == RUN_ONCE
    if catch_up and not on_time:
        job_id = dispatch(session, row, missed[-1], dispatcher)
    if job_id is not None:
        row.last_run_at = now
    if missed:
        logger.warning("Schedule %s: %d tick(s) missed, %s to %s", row.id, len(missed), missed[0], missed[-1])
        session.add(
            ScheduleEvent(
                schedule_id=row.id,
                tenant_id=row.tenant_id,
                kind=MISSED,
                tick_at=missed[0],
                last_tick_at=missed[-1],
                count=len(missed),
                action="ran_once" if catch_up and job_id else "skipped",
                job_id=job_id if catch_up else None,
            )
        )
    return FireResult(job_id, len(missed))


def dispatch(session: Session, row: JobSchedule, tick: datetime, dispatcher: Dispatcher) -> str | None:
    """Submit the schedule's job (recorded, linked by schedule_id); None if refused.

    A refusal (job class gone or inactive, an option no longer valid) is recorded in the schedule's history; a broker
    failure leaves a failed run, as for any dispatch.
    """

    spec = DispatchSpec(
        job_class=row.job_class,
        payload=dict(row.payload or {}),
        tenant_id=row.tenant_id,
        schedule_id=row.id,
        job_id=tick_job_id(row.id, tick),
        **spec_kwargs(row.options),  # the schedule's dispatch options, as stored
    )
    try:
        done = submit(
            session,
            spec,
            registry=dispatcher.registry,
            publisher=dispatcher.publisher,
            settings=dispatcher.settings,
        )
    except IntegrityError:
        session.rollback()  # another fire of this tick recorded its job first
        return None
    except ValidationError as exc:
        logger.error("Schedule %s: dispatch refused: %s", row.id, exc)
        session.add(
            ScheduleEvent(
                schedule_id=row.id,
                tenant_id=row.tenant_id,
                kind=REFUSED,
                tick_at=tick,
                last_tick_at=tick,
                count=1,
                detail=str(exc),
            )
        )
        return None
    except BackendUnavailable:
        logger.exception("Schedule %s: the broker refused the job; it is recorded as failed", row.id)
        return None
    return done.row.id


def align(session: Session, store: ScheduleStore, row: JobSchedule) -> None:
    """Point the entry at the row's next tick, then re-read the row: an edit that
    committed meanwhile may have written its entry before this write, so write again."""
    for _ in range(3):
        seen = (row.cron_expression, row.timezone, row.is_active, row.next_run_at)
        store.write(row.id, row.next_run_at, enabled=row.is_active)
        session.expire(row)
        fresh = session.get(JobSchedule, row.id)
        if fresh is None:
            store.delete(row.id)
            return
        if (fresh.cron_expression, fresh.timezone, fresh.is_active, fresh.next_run_at) == seen:
            return
        row = fresh
