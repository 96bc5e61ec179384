"""Celeriac's scheduled set against real Redis and SQL: claimed once, released once, rebuilt after a loss."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app import redis_keys
from app.composition.submit import submit
from app.db import session_scope
from app.errors import Conflict, ValidationError
from app.kernel.apply import EventApplier
from app.kernel.dispatching import DispatchSpec
from app.kernel.held_retry import hold_event
from app.kernel.scheduled import ScheduledSet, holds, release_row, run_now
from app.models import JobExecution
from app.recording.scheduled import Rebuilder, Releaser
from celeriac import events as ev

pytestmark = pytest.mark.redis


def _held_row(due: datetime, status: str = "pending") -> str:
    job_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            JobExecution(
                id=job_id,
                job_class="demo.echo",
                queue="sched-unit",
                status=status,
                payload={"value": 1},
                message={"h": None, "r": 0},
                due_at=due,
                eta=due,
                created_at=datetime.now(UTC),
            )
        )
    return job_id


def _row(job_id: str) -> JobExecution:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


def test_due_jobs_are_claimed_exactly_once_by_concurrent_releasers(redis_client: Any) -> None:
    redis_client.delete(redis_keys.SCHEDULED)
    now = time.time()
    due = {f"job-{i}": now - 1 for i in range(300)}
    later = {"later": now + 3600}
    ScheduledSet(redis_client).add({**due, **later})
    taken: list[list[str]] = [[], [], []]

    def claim(slot: int) -> None:
        mine = ScheduledSet(redis_client)
        while batch := mine.claim_due(time.time(), 7):
            taken[slot].extend(batch)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = [job for part in taken for job in part]
    assert sorted(everything) == sorted(due)  # each due job once, by exactly one claimer
    assert ScheduledSet(redis_client).entries(10) == [("later", pytest.approx(now + 3600))]


def test_a_release_is_exactly_once_and_only_when_due(settings: Any) -> None:
    now = datetime.now(UTC)
    job_id = _held_row(now - timedelta(seconds=1))
    with session_scope() as session:
        assert release_row(session, job_id, now, 0) is True
        assert release_row(session, job_id, now, 0) is False  # a second releaser finds it released
    row = _row(job_id)
    assert row.due_at is None and row.published_at is not None
    future = _held_row(now + timedelta(hours=1))
    with session_scope() as session:
        assert release_row(session, future, now, 30) is False  # SQL says later: not released early


def test_releaser_publishes_a_due_job_once_and_puts_it_back_when_the_broker_fails(
    settings: Any, redis_client: Any
) -> None:
    redis_client.delete(redis_keys.SCHEDULED)
    due = datetime.now(UTC) - timedelta(seconds=1)
    ok, failing, cancelled = _held_row(due), _held_row(due), _held_row(due, status="cancelled")
    published: list[str] = []

    def publish(row: JobExecution) -> None:
        if row.id == failing:
            raise ConnectionError("broker down")
        published.append(row.id)

    ScheduledSet(redis_client).add({job: due.timestamp() for job in (ok, failing, cancelled)})
    releaser = Releaser(settings, redis_client, session_scope, publish=publish)
    assert releaser.release_due() == 1
    assert published == [ok]
    assert _row(ok).due_at is None
    # The failed publish is undone: the job waits again, due at once, and is in the set.
    assert _row(failing).due_at is not None and _row(failing).published_at is None
    assert ScheduledSet(redis_client).scores([failing, cancelled]) == [pytest.approx(time.time(), abs=5), None]
    assert releaser.release_due() == 0  # ok is never published twice; failing fails again
    assert published == [ok]


def test_the_set_is_rebuilt_from_sql_after_redis_lost_it(settings: Any, redis_client: Any) -> None:
    redis_client.delete(redis_keys.SCHEDULED)
    due = datetime.now(UTC) + timedelta(minutes=5)
    waiting = _held_row(due)
    retrying = _held_row(due + timedelta(hours=2), status="retrying")
    finished = _held_row(due, status="completed")
    rebuilder = Rebuilder(redis_client)
    with session_scope() as session:
        rebuilder.run(session, full=True)
    scores = ScheduledSet(redis_client).scores([waiting, retrying, finished])
    assert scores == [pytest.approx(due.timestamp()), pytest.approx((due + timedelta(hours=2)).timestamp()), None]
    with session_scope() as session:
        assert rebuilder.run(session, full=True) == 0  # nothing missing: nothing added twice


def test_run_now_makes_a_held_job_due_and_refuses_one_that_does_not_wait(settings: Any, redis_client: Any) -> None:
    job_id = _held_row(datetime.now(UTC) + timedelta(days=3))
    with session_scope() as session:
        row = run_now(session, job_id, None, redis_client)
        assert row.due_at is not None and row.due_at <= datetime.now(UTC)
    assert ScheduledSet(redis_client).scores([job_id]) == [pytest.approx(time.time(), abs=5)]
    released = _held_row(datetime.now(UTC), status="completed")
    with session_scope() as session, pytest.raises(Conflict):
        run_now(session, released, None, redis_client)


def test_a_long_delay_dispatch_is_held_not_published(
    settings: Any, redis_client: Any, recording_publisher: Any
) -> None:
    from app.backends.current import backends

    quick = dataclasses.replace(settings, scheduled_after_s=60, max_delay_s=30 * 24 * 3600)
    assert holds(61, quick) and not holds(60, quick) and not holds(None, quick)
    with session_scope() as session:
        short = submit(
            session, DispatchSpec("demo.echo", {"value": 1}, delay_s=30), registry=backends().registry,
            publisher=backends().publisher, settings=quick,
        )
        long = submit(
            session, DispatchSpec("demo.echo", {"value": 2}, delay_s=7 * 24 * 3600, expires_s=60),
            registry=backends().registry, publisher=backends().publisher, settings=quick,
        )
    assert [job.job_id for job in recording_publisher] == [short.id]  # only the short one is a broker ETA
    row = _row(long.id)
    assert row.status == "pending" and row.due_at is not None and row.published_at is None
    assert row.due_at - datetime.now(UTC) > timedelta(days=6, hours=23)
    assert row.expires_at == row.due_at + timedelta(seconds=60)
    assert ScheduledSet(redis_client).scores([long.id]) == [pytest.approx(row.due_at.timestamp())]
    with session_scope() as session, pytest.raises(ValidationError, match="delay must be at most"):
        submit(
            session, DispatchSpec("demo.echo", {}, delay_s=31 * 24 * 3600), registry=backends().registry,
            publisher=backends().publisher, settings=quick,
        )


def _start(job_id: str, key: str) -> dict[str, Any]:
    return ev.started(
        job_id=job_id, attempt_key=key, task="demo.flaky", worker="w1", retries=0, queue="default", payload=None
    )


def test_a_held_retry_waits_with_its_next_retry_count_and_a_later_start_drops_it() -> None:
    job_id = str(uuid.uuid4())
    published = ev.published(
        job_id=job_id, task="demo.flaky", queue="default", priority=5, payload={"key": "k"}, retries=0,
        eta=None, expires=None, parent_id=None, root_id=None, celeriac={}, shape={"h": None, "r": 0},
    )
    start = _start(job_id, "a1")
    retry = ev.retried(job_id, "a1", 5, None, RuntimeError("boom"), None, None)
    due = time.time() + 7200
    hold = hold_event(job_id, due, 1)
    for offset, event in enumerate((published, start, retry, hold)):
        event["ts"] = time.time() + offset * 0.001
    with session_scope() as session:
        EventApplier().apply(session, [published, start, retry, hold])
    row = _row(job_id)
    assert row.status == "retrying" and row.due_at is not None and abs(row.due_at.timestamp() - due) < 1
    assert row.published_at is None and row.message == {"h": None, "r": 1}
    # A redelivered copy of the attempt started after all: it is no longer held.
    again = _start(job_id, "a2")
    with session_scope() as session:
        EventApplier().apply(session, [again])
    assert _row(job_id).due_at is None
