"""Real `celery beat` processes with the stock RedBeat scheduler firing Celeriac schedules (S1, S4).

Timing tests use 6-field expressions (a leading seconds field) so a tick is seconds away;
cron correctness in local time, DST included, is proven by tests/unit/test_schedule_cron.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app import redis_keys
from app.db import session_scope
from app.models import JobExecution, JobSchedule, ScheduleEvent
from app.schedules.cron import CronSchedule
from app.schedules.entries import SCHEDULE_ZSET, EntryStore, entry_key
from app.schedules.service import default_service
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.redis


class BeatProcess:
    """`celery -A <app> beat -S redbeat.RedBeatScheduler`, as the Procfile runs it."""

    def __init__(self, log_path: Path, app: str = "app.celery_app", env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "beat", "-S", "redbeat.RedBeatScheduler", "-l", "debug"],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_started(self) -> None:
        """Until it holds the lock (or runs without one) and reconciled."""
        wait_for(
            lambda: "Schedules reconciled" in self.text() or self.process.poll() is not None,
            timeout=60,
            what="beat start",
        )
        assert self.process.poll() is None, self.text()[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture()
def clean_schedules(redis_client: Any) -> Iterator[None]:
    """No schedule of another test fires while a beat runs here; no lock left behind."""

    def clear() -> None:
        with session_scope() as session:
            service = default_service(session)
            for row in service.get_scheduled_jobs():
                service.remove_schedule(row.id, None)
        redis_client.delete(redis_keys.REDBEAT_PREFIX + "lock")

    clear()
    yield
    clear()


@pytest.fixture()
def beats(tmp_path: Path, clean_schedules: None) -> Iterator[Callable[..., BeatProcess]]:
    started: list[BeatProcess] = []

    def start(app: str = "app.celery_app", wait: bool = True) -> BeatProcess:
        beat = BeatProcess(tmp_path / f"beat{len(started)}.log", app)
        started.append(beat)
        if wait:
            beat.wait_started()
        return beat

    yield start
    for beat in started:
        beat.stop()


def _schedule(cron: str, **fields: Any) -> str:
    with session_scope() as session:
        row = default_service(session).schedule_job(
            "demo.echo", cron, fields.pop("timezone", "UTC"), {"value": "tick"}, tenant_id="beat-tests", **fields
        )
        return row.id


def _runs(schedule_id: str) -> list[JobExecution]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(JobExecution).where(JobExecution.schedule_id == schedule_id).order_by(JobExecution.created_at)
            )
        )


def _count(schedule_id: str) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(JobExecution).where(JobExecution.schedule_id == schedule_id)
        return int(session.scalar(query) or 0)


def test_schedule_fires_on_time_and_runs_as_a_recorded_execution(beats: Any, stack: Any) -> None:
    # Given a beat and a schedule every 3 seconds
    beats()
    schedule_id = _schedule("*/3 * * * * *")
    # When four ticks passed
    runs = wait_for(lambda: (r := _runs(schedule_id)) and len(r) >= 4 and r, timeout=30, what="four fires")
    # Then the last fires came within a second of their ticks (beat may see a new
    # schedule up to beat_max_loop_interval late, so the first ones may be late)
    for run in runs[-2:]:
        late = run.created_at.timestamp() % 3
        assert late < 1.5, f"fired {late:.2f}s after its tick"
    # and the job ran through the worker, recorded and linked to the schedule
    wait_for(lambda: any(r.status == "completed" for r in _runs(schedule_id)), what="a completed run")
    with session_scope() as session:
        row = session.get(JobSchedule, schedule_id)
        assert row is not None and row.last_run_at is not None and row.next_run_at is not None
        assert row.next_run_at > datetime.now(UTC) - timedelta(seconds=1)
        assert row.last_run_at >= runs[2].created_at - timedelta(seconds=1)


def test_edits_take_effect_without_restart_and_delete_stops_it(beats: Any) -> None:
    beats()
    # A schedule that would not fire for a year
    schedule_id = _schedule("0 0 1 1 *")
    with session_scope() as session:
        # Edited to every 2 seconds while beat runs
        default_service(session).update_schedule(schedule_id, None, {"cron": "*/2 * * * * *"})
    wait_for(lambda: _count(schedule_id) >= 2, timeout=20, what="fires after the edit")
    with session_scope() as session:
        default_service(session).pause_schedule(schedule_id, None)
    paused_at = _count(schedule_id)
    _quiet_for(4.5)
    assert _count(schedule_id) <= paused_at + 1  # a fire already under way may land
    with session_scope() as session:
        default_service(session).resume_schedule(schedule_id, None)
    wait_for(lambda: _count(schedule_id) >= paused_at + 2, timeout=20, what="fires after resume")
    with session_scope() as session:
        default_service(session).remove_schedule(schedule_id, None)
    removed_at = _count(schedule_id)
    _quiet_for(4.5)
    assert _count(schedule_id) <= removed_at + 1


def _quiet_for(seconds: float) -> None:
    """Asserting that nothing happens needs time to pass: two ticks of the 2 s schedule."""
    time.sleep(seconds)


def test_two_beats_fire_each_tick_once(beats: Any) -> None:
    # Given two beats with the production configuration: one holds RedBeat's lock
    first = beats()
    second = beats(wait=False)
    schedule_id = _schedule("*/2 * * * * *")
    wait_for(lambda: _count(schedule_id) >= 4, timeout=30, what="four fires")
    _assert_one_run_per_tick(schedule_id)
    assert "Schedules reconciled" not in second.text()  # it waits for the lock
    # When the lock holder stops, the other takes over and goes on firing once per tick
    first.stop()
    second.wait_started()
    fired = _count(schedule_id)
    wait_for(lambda: _count(schedule_id) >= fired + 2, timeout=30, what="fires after failover")
    _assert_one_run_per_tick(schedule_id)


def test_two_beats_without_a_lock_still_fire_each_tick_once(beats: Any) -> None:
    """Split brain (both beats tick): the SET NX claim per tick is what keeps it at one."""
    first = beats("tests.lockless_beat")
    second = beats("tests.lockless_beat")
    schedule_id = _schedule("*/2 * * * * *")
    wait_for(lambda: _count(schedule_id) >= 5, timeout=30, what="five fires")
    _assert_one_run_per_tick(schedule_id)
    # Both beats really fired the entry: each logged sending it
    assert "Sending due task job_schedule:" + schedule_id in first.text()
    assert "Sending due task job_schedule:" + schedule_id in second.text()


def _assert_one_run_per_tick(schedule_id: str) -> None:
    """Every tick since the schedule was created ran once: never more runs than ticks so
    far, and no tick older than beat's loop interval (plus slack) left without its run.

    (Runs at the same moment are fine: ticks seen late, within the grace time, each run.)
    """
    with session_scope() as session:
        row = session.get(JobSchedule, schedule_id)
        assert row is not None
        cron, created = CronSchedule.parse(row.cron_expression), row.created_at
    now = datetime.now(UTC)
    runs = len(_runs(schedule_id))
    ticks = len(cron.between(created, now, 10_000))
    settled = len(cron.between(created, now - timedelta(seconds=7), 10_000))
    assert settled <= runs <= ticks, (
        f"{runs} runs for {ticks} ticks ({settled} settled): a tick fired twice or not at all"
    )


def test_beat_start_reconciles_drift_both_ways(beats: Any, redis_client: Any) -> None:
    # Given a schedule whose entry vanished and an entry with no schedule row
    schedule_id = _schedule("0 4 * * *", timezone="Europe/Berlin")
    EntryStore(redis_client).delete(schedule_id)
    EntryStore(redis_client).write("orphan-id", datetime.now(UTC) + timedelta(hours=1), enabled=True)
    # When beat starts
    beats()
    # Then the row has its entry back and the orphan is gone
    entry = EntryStore(redis_client).read(schedule_id)
    assert entry is not None and entry.enabled
    with session_scope() as session:
        row = session.get(JobSchedule, schedule_id)
        assert row is not None and entry.tick == row.next_run_at
    assert redis_client.exists(entry_key("orphan-id")) == 0
    assert redis_client.zscore(SCHEDULE_ZSET, entry_key("orphan-id")) is None


@pytest.mark.parametrize(("policy", "runs_expected", "action"), [("skip", 0, "skipped"), ("run_once", 1, "ran_once")])
def test_ticks_missed_while_beat_was_down_follow_the_policy(
    beats: Any, redis_client: Any, policy: str, runs_expected: int, action: str
) -> None:
    # Given an hourly schedule, last due about 30 minutes ago, whose entry still waits
    # for the tick 3 hours before that (beat was down)
    now = datetime.now(UTC)
    minute = (now.minute + 30) % 60
    schedule_id = _schedule(f"{minute} * * * *", missed_fire_policy=policy)
    latest = now.replace(minute=minute, second=0, microsecond=0)
    if latest > now:
        latest -= timedelta(hours=1)
    stale = latest - timedelta(hours=3)
    EntryStore(redis_client).write(schedule_id, stale, enabled=True)
    # When beat starts again
    beats()
    # Then the missed ticks are recorded once, with the policy's action
    events = wait_for(lambda: _events(schedule_id), timeout=20, what="a missed-fire event")
    assert len(events) == 1
    assert events[0].count == 4 and events[0].action == action
    assert _count(schedule_id) == runs_expected
    with session_scope() as session:
        row = session.get(JobSchedule, schedule_id)
        assert row is not None and row.next_run_at is not None and row.next_run_at > now


def _events(schedule_id: str) -> list[ScheduleEvent]:
    with session_scope() as session:
        return list(session.scalars(select(ScheduleEvent).where(ScheduleEvent.schedule_id == schedule_id)))
