"""Fires without a beat: claims, missed-fire policies, refusals, drift, run_scheduled_jobs (S3, S4).

Schedule entries, publisher and clock are in-memory twins (app.backends.twins); the claims
are real Redis (SET NX is what makes a tick run once). RedBeat itself: tests/integration.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.backends.current import Backends
from app.backends.twins import MemoryPublisher
from app.config import get_settings
from app.db import session_scope
from app.kernel.dispatching import find_definition
from app.models import JobExecution, JobSchedule, ScheduleEvent
from app.schedules.firing import Dispatcher, fire
from app.schedules.service import JobSchedulerService


@pytest.fixture()
def published(twins: Backends) -> MemoryPublisher:
    """Keeps what it was given (the jobs are still recorded in SQL)."""
    publisher = twins.publisher
    assert isinstance(publisher, MemoryPublisher)
    return publisher


@pytest.fixture()
def service(redis_client: Any, twins: Backends) -> Iterator[JobSchedulerService]:
    with session_scope() as session:
        dispatcher = Dispatcher(twins.registry, twins.publisher, get_settings())
        yield JobSchedulerService(session, twins.schedules, dispatcher, redis_client)  # type: ignore[arg-type]


NOW = datetime(2030, 1, 7, 12, 0, 5, tzinfo=UTC)  # a Monday, 5 s past noon


def hourly(
    service: JobSchedulerService, policy: str = "skip", cron: str = "0 * * * *", tenant: str = "fire-tests"
) -> JobSchedule:
    return service.schedule_job(
        "demo.echo",
        cron,
        "Europe/Berlin",
        {"value": "x"},
        tenant_id=tenant,
        missed_fire_policy=policy,
        now=NOW - timedelta(hours=1),
    )


def do_fire(service: JobSchedulerService, row: JobSchedule, tick: datetime, now: datetime = NOW) -> Any:
    return fire(service.session, service.store, service.redis, row.id, tick, service.dispatcher, now)


def runs(service: JobSchedulerService, row: JobSchedule) -> list[JobExecution]:
    return list(service.session.scalars(select(JobExecution).where(JobExecution.schedule_id == row.id)))


def events(service: JobSchedulerService, row: JobSchedule) -> list[ScheduleEvent]:
    return list(service.session.scalars(select(ScheduleEvent).where(ScheduleEvent.schedule_id == row.id)))


def test_an_on_time_tick_runs_once_however_often_it_is_fired(
    service: JobSchedulerService, published: MemoryPublisher
) -> None:
    row = hourly(service)
    tick = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    first = do_fire(service, row, tick)
    again = do_fire(service, row, tick)
    assert first.job_id is not None and again.job_id is None
    assert [job.schedule_id for job in published.published] == [row.id]
    assert published.published[0].celeriac_header()["schedule"] == row.id
    (run,) = runs(service, row)
    assert run.tenant_id == "fire-tests" and run.payload == {"value": "x"}
    assert row.last_run_at == NOW and row.next_run_at == datetime(2030, 1, 7, 13, 0, tzinfo=UTC)
    entry = service.store.read(row.id)
    assert entry is not None and entry.tick == row.next_run_at
    assert not events(service, row)


@pytest.mark.parametrize(("policy", "expected_runs", "action"), [("skip", 0, "skipped"), ("run_once", 1, "ran_once")])
def test_ticks_past_the_grace_time_are_missed_and_follow_the_policy(
    service: JobSchedulerService, policy: str, expected_runs: int, action: str
) -> None:
    row = hourly(service, policy)
    stale = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    result = do_fire(service, row, stale, now=NOW + timedelta(minutes=30))
    assert result.missed == 4  # 09:00, 10:00, 11:00, 12:00
    assert len(runs(service, row)) == expected_runs
    (event,) = events(service, row)
    assert (event.kind, event.count, event.action) == ("missed", 4, action)
    assert event.tick_at == stale and event.last_tick_at == datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    history = service.history(row.id, None)
    assert history["counts"]["missed"] == 4 and history["events"][0]["action"] == action


def test_late_ticks_within_grace_each_run(service: JobSchedulerService) -> None:
    row = hourly(service, cron="*/10 * * * * *")
    result = do_fire(service, row, datetime(2030, 1, 7, 12, 0, tzinfo=UTC), now=NOW + timedelta(seconds=20))
    assert result.missed == 0 and len(runs(service, row)) == 3  # 12:00:00, :10, :20


def test_a_refused_dispatch_is_recorded_in_the_history(service: JobSchedulerService) -> None:
    from app.jobs.celery_backend import sync_registry_definitions

    sync_registry_definitions()
    row = hourly(service)
    # The definition that applies to the schedule's tenant (other tests may give tenants their own).
    definition = find_definition(service.session, "demo.echo", row.tenant_id)
    assert definition is not None
    definition.is_active = False
    service.session.commit()
    try:
        result = do_fire(service, row, datetime(2030, 1, 7, 12, 0, tzinfo=UTC))
    finally:
        definition.is_active = True
        service.session.commit()
    assert result.job_id is None
    (event,) = events(service, row)
    assert event.kind == "refused" and "inactive" in (event.detail or "")
    assert row.next_run_at == datetime(2030, 1, 7, 13, 0, tzinfo=UTC)


def test_a_fire_for_a_deleted_or_paused_schedule_repairs_the_entry(service: JobSchedulerService) -> None:
    row = hourly(service)
    service.pause_schedule(row.id, None)
    service.store.write(row.id, NOW, enabled=True)  # drift: an entry still firing
    assert do_fire(service, row, NOW).job_id is None
    entry = service.store.read(row.id)
    assert entry is not None and not entry.enabled
    service.session.execute(ScheduleEvent.__table__.delete())
    schedule_id = row.id
    service.session.delete(row)
    service.session.commit()
    service.store.write(schedule_id, NOW, enabled=True)
    assert fire(service.session, service.store, service.redis, schedule_id, NOW, service.dispatcher, NOW).job_id is None
    assert service.store.read(schedule_id) is None


def test_run_scheduled_jobs_fires_what_is_due_and_nothing_twice(service: JobSchedulerService, unique: str) -> None:
    tenant = f"t-{unique}"
    due = hourly(service, tenant=tenant)
    later = service.schedule_job("demo.echo", "0 0 1 1 *", tenant_id=tenant, now=NOW)
    results = service.run_scheduled_jobs(tenant_id=tenant, now=NOW)
    assert [r.job_id is not None for r in results] == [True]
    assert len(runs(service, due)) == 1 and not runs(service, later)
    assert service.run_scheduled_jobs(tenant_id=tenant, now=NOW) == []  # next run is 13:00 now
    assert service.get_next_run_time(due.id, tenant) == datetime(2030, 1, 7, 13, 0, tzinfo=UTC)
    assert [s.id for s in service.get_scheduled_jobs(tenant)] == [due.id, later.id]


def test_reconcile_repairs_drift_both_ways_and_keeps_a_pending_tick(service: JobSchedulerService) -> None:
    from app.schedules.reconcile import reconcile

    kept = hourly(service)
    lost = hourly(service)
    paused = hourly(service)
    service.pause_schedule(paused.id, None)
    stale = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
    service.store.write(kept.id, stale, enabled=True)  # beat was down: the pending tick is kept
    service.store.delete(lost.id)  # Redis lost it
    service.store.write(paused.id, NOW, enabled=True)  # a paused schedule still firing
    service.store.write("no-such-row", NOW, enabled=True)  # an orphan
    report = reconcile(service.session, service.store, now=NOW)
    assert {lost.id, paused.id} <= set(report.written) and kept.id not in report.written
    assert "no-such-row" in report.deleted and kept.next_run_at == stale
    kept_entry, lost_entry, paused_entry = (service.store.read(r.id) for r in (kept, lost, paused))
    assert kept_entry is not None and kept_entry.tick == stale
    assert lost_entry is not None and lost_entry.enabled and lost_entry.tick == lost.next_run_at
    assert paused_entry is not None and not paused_entry.enabled
    assert service.store.read("no-such-row") is None
    assert "no-such-row" not in service.store.ids()


def test_beat_applies_the_fire_task_in_process_and_reconciles_at_start(
    service: JobSchedulerService, monkeypatch: pytest.MonkeyPatch, published: MemoryPublisher, twins: Backends
) -> None:
    from types import SimpleNamespace

    from app.schedules import beat

    row = hourly(service, cron="* * * * * *")
    tick = int(datetime.now(UTC).timestamp())
    twins.clock.at = datetime.fromtimestamp(tick, UTC)  # type: ignore[attr-defined]  # beat fires at the tick
    # As Celery's Scheduler.apply_async calls it: beat's header, no broker involved
    result = beat.fire_schedule.apply_async(
        [], {"schedule_id": row.id, "tick": tick}, headers={"celery_beat_task": True}
    )
    assert result is None
    assert [job.schedule_id for job in published.published] == [row.id]
    # a failing fire keeps its tick and is retried RETRY_S later
    monkeypatch.setattr(beat, "fire_now", lambda **_: (_ for _ in ()).throw(RuntimeError("SQL down")))
    with pytest.raises(RuntimeError):
        beat.fire_schedule.apply_async([], {"schedule_id": row.id, "tick": tick}, headers={"celery_beat_task": True})
    entry = service.store.read(row.id)
    assert entry is not None and entry.tick == datetime.fromtimestamp(tick, UTC)
    assert entry.score is not None and entry.score > tick + 20
    # the beat_init handler reconciles only when the lock is held (or there is none)
    beat.reconcile_at_start(SimpleNamespace(scheduler=SimpleNamespace(lock_key="k", lock=None)))
    assert service.store.read(row.id) == entry
    beat.reconcile_at_start(SimpleNamespace(scheduler=SimpleNamespace(lock_key=None, lock=None)))
    fixed = service.store.read(row.id)
    assert fixed is not None and fixed.tick is not None and fixed.score == int(fixed.tick.timestamp())


def test_a_tick_claimed_by_a_beat_that_died_mid_fire_still_runs_once(
    service: JobSchedulerService, published: MemoryPublisher
) -> None:
    from app import redis_keys
    from app.schedules.firing import tick_job_id

    row = hourly(service)
    tick = datetime(2030, 1, 7, 12, 0, tzinfo=UTC)
    claim = redis_keys.schedule_claim(row.id, int(tick.timestamp()))
    service.redis.set(claim, "1", ex=redis_keys.SCHEDULE_CLAIM_TTL_S)  # claimed, then SIGKILLed
    held_back = do_fire(service, row, tick)
    assert held_back.job_id is None and published.published == []
    assert service.redis.ttl(claim) <= redis_keys.SCHEDULE_CLAIM_TTL_S  # it frees the tick in minutes
    service.redis.delete(claim)  # ... as it does once it expires
    ran = do_fire(service, row, tick, now=NOW + timedelta(seconds=30))
    assert ran.job_id == tick_job_id(row.id, tick)
    # Claims gone, the job's row still says the tick fired: a third fire runs nothing.
    service.redis.delete(claim)
    assert do_fire(service, row, tick, now=NOW + timedelta(seconds=40)).job_id is None
    assert [job.job_id for job in published.published] == [tick_job_id(row.id, tick)]
