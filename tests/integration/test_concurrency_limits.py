"""Concurrency limits with real prefork workers, a real recorder and real Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app.backends.current import backends
from app.composition.submit import submit
from app.db import session_scope
from app.kernel.dispatching import DispatchSpec
from app.models import JobExecution
from celeriac.concurrency import ACTIVE_KEYS, Slots, scoped_key
from tests import sample_jobs_concurrency
from tests.conftest import wait_for
from tests.integration.conftest import RecorderThread, WorkerProcess, quick_settings
from tests.sample_jobs_concurrency import spans

pytestmark = [pytest.mark.redis]

#: Modules the test workers load: the usual test jobs and the ones under a limit.
MODULES = {"CELERIAC_TASK_MODULES": "tests.sample_jobs,tests.sample_jobs_concurrency"}
assert sample_jobs_concurrency.SpanJob  # registered in this process too (dispatch checks the class)


@pytest.fixture()
def queue(unique: str) -> str:
    """A queue only this test's workers consume."""
    return f"conc-{unique}"


def _dispatch(queue: str, key: str, settings: Any, **payload: Any) -> str:
    spec = DispatchSpec(
        job_class="tests.concurrency.span", payload={"key": key, **payload}, tenant_id="acme", queue=queue
    )
    used = backends()
    with session_scope() as session:
        return submit(session, spec, registry=used.registry, publisher=used.publisher, settings=settings).id


def _rows(ids: list[str]) -> list[JobExecution]:
    with session_scope() as session:
        rows = [session.get(JobExecution, job_id) for job_id in ids]
        for row in rows:
            assert row is not None
            session.expunge(row)
        return rows  # type: ignore[return-value]


def _no_overlap(found: list[tuple[str, float, float]]) -> None:
    for (before, _, ended), (after, started, _) in zip(found, found[1:], strict=False):
        assert started >= ended, f"{after} started before {before} ended"


@pytest.fixture()
def worker_of(tmp_path: Path, queue: str) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(name: str, concurrency: int) -> WorkerProcess:
        proc = WorkerProcess(
            tmp_path / f"{name}.log", queues=queue, concurrency=concurrency, hostname=f"{name}-{queue}@%h", env=MODULES
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.stop()


def test_jobs_with_one_key_never_overlap_on_a_worker_running_three_at_once(
    worker_of: Any, recorder: RecorderThread, queue: str, unique: str, settings: Any, redis_client: redis.Redis
) -> None:
    # Given a worker that could run three jobs at once
    worker_of("wide", 3)
    # When six jobs with the same key (limit 1, from the class) are dispatched together
    ids = [_dispatch(queue, unique, settings, seconds=0.3) for _ in range(6)]
    # Then all complete, one at a time, each in one attempt
    wait_for(lambda: len(spans(unique)) == 6, timeout=60, what="six runs")
    _no_overlap(spans(unique))
    wait_for(lambda: all(row.status == "completed" for row in _rows(ids)), timeout=30, what="rows completed")
    rows = _rows(ids)
    assert [row.attempts for row in rows] == [1] * 6
    assert {row.concurrency_key for row in rows} == {f"span:{unique}"}
    noted = [row for row in rows if any("waiting for a concurrency slot" in n["text"] for n in row.notes or [])]
    assert noted, "the jobs that waited say so on their timeline"
    [usage] = Slots(redis_client).usage([scoped_key("acme", f"span:{unique}")])
    assert (usage.running, usage.waiting) == (0, 0)


def test_a_slot_held_by_a_killed_worker_is_freed_by_its_lease_and_the_waiter_runs(
    worker_of: Any, recorder: RecorderThread, reconciler: Any, queue: str, unique: str, redis_client: redis.Redis
) -> None:
    # Leases of 3 s (quick_settings: CELERIAC_REAP_AFTER_S=3), carried by the messages.
    quick = quick_settings()
    doomed = worker_of("doomed", 2)
    holder = _dispatch(queue, unique, quick, slow_once=60)
    wait_for(lambda: redis_client.llen(sample_jobs_concurrency.spans_key(unique)) == 1, what="the holder to start")
    waiter = _dispatch(queue, unique, quick, seconds=0.1)
    key = scoped_key("acme", f"span:{unique}")
    wait_for(lambda: Slots(redis_client).usage([key])[0].waiting == 1, what="the waiter to park")
    # When the worker holding the slot dies with it (SIGKILL, main process and pool)
    doomed.kill()
    worker_of("survivor", 2)
    # Then, once the lease ends, the recorder's reconcile frees the slot and the waiter runs;
    # the holder, back from the dead worker, waits its turn and runs again.
    wait_for(
        lambda: reconciler.run_once() is not None and {span[0] for span in spans(unique)} >= {waiter, holder},
        timeout=60,
        what="the waiter, then the holder, to run",
    )
    wait_for(lambda: _rows([waiter])[0].status == "completed", what="the waiter's row completed")
    assert _rows([waiter])[0].attempts == 1
    _no_overlap(spans(unique))
    wait_for(
        lambda: key.encode() not in redis_client.smembers(ACTIVE_KEYS),  # no holder, no waiter
        what="every slot given back",
    )


def test_a_parked_job_is_not_republished_as_lost_but_is_after_redis_lost_its_waiting_list(
    worker_of: Any, recorder: RecorderThread, reconciler: Any, queue: str, unique: str, redis_client: redis.Redis
) -> None:
    key = scoped_key("acme", f"span:{unique}")
    slots = Slots(redis_client)
    # A holder that never finishes on its own (its slot is taken by hand), and a parked job
    slots.acquire(key, "held-elsewhere", limit=1, lease_s=600, message=None)
    worker_of("parker", 1)
    parked = _dispatch(queue, unique, quick_settings(), seconds=0.1)
    wait_for(lambda: slots.usage([key])[0].waiting == 1, what="the job to park")
    wait_for(lambda: _rows([parked])[0].notes, what="its note")
    # The reconciler leaves it where it is, pending, while it runs past the judging grace (1 s)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert reconciler.run_once().republished == 0
    assert slots.usage([key])[0].waiting == 1 and _rows([parked])[0].status == "pending"
    # When Redis loses the waiting list (and the slot), the reconciler finds the job and it runs
    redis_client.delete(f"celeriac:concurrency:waiting:{key}", f"celeriac:concurrency:parked:{key}")
    redis_client.delete(f"celeriac:concurrency:holders:{key}")
    wait_for(
        lambda: reconciler.run_once() is not None and _rows([parked])[0].status == "completed",
        timeout=60,
        what="the lost waiter republished and run",
    )
    assert _rows([parked])[0].attempts == 1
