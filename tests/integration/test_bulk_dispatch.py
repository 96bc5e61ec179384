"""Bulk dispatch (issue 15 item 2) with a real worker: `dispatch_many` and `batch` messages are
built and pipelined by Celeriac, run by Celery as if `apply_async` had sent them, and a bulk
the broker drops half-way is completed by the reconciler, each job running exactly once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from app.backends import celery_publisher
from app.jobs import batch
from app.jobs.dispatch import PendingDispatch
from app.models import JobExecution
from app.monitoring.queue_stats import broker_depth
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess, reconcile_until
from tests.integration.test_execution import row, wait_status

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def runs(redis_client: Any, key: str) -> int:
    return int(redis_client.get(f"tests:counted:{key}") or 0)


def recorded(job_id: str) -> JobExecution:
    found = row(job_id)
    assert found is not None, f"job {job_id} has no row"
    return found


def test_jobs_dispatched_many_at_once_run_once_each_on_their_queue_and_priority(
    stack: Any, unique: str, redis_client: Any
) -> None:
    urgent = PendingDispatch("tests.counted", {"queue": "high", "priority": 9, "tags": ["bulk"]})
    later = PendingDispatch("tests.counted", {"queue": "low", "priority": 0})

    high_ids = urgent.dispatch_many([{"key": f"{unique}-h{i}"} for i in range(25)])
    low_ids = later.dispatch_many([{"key": f"{unique}-l{i}"} for i in range(25)])

    for job_id in high_ids + low_ids:
        wait_status(job_id, "completed")
    assert {(recorded(job_id).queue, recorded(job_id).priority) for job_id in high_ids} == {("high", 9)}
    assert {(recorded(job_id).queue, recorded(job_id).priority) for job_id in low_ids} == {("low", 0)}
    assert all((recorded(job_id).tags or []) == ["bulk"] for job_id in high_ids)
    assert [runs(redis_client, f"{unique}-h{i}") for i in range(25)] == [1] * 25
    assert [runs(redis_client, f"{unique}-l{i}") for i in range(25)] == [1] * 25


def test_a_batch_of_job_classes_runs_and_finishes_with_its_callback(stack: Any, unique: str) -> None:
    from tasks.demo import Echo

    created = batch([Echo(value=i) for i in range(40)]).name(unique).finally_(Echo(value="done")).dispatch()

    for i, job_id in enumerate(created.job_ids):
        done = wait_status(job_id, "completed")
        assert done.result == i and done.batch_id == created.id


def test_a_bulk_the_broker_drops_half_way_is_completed_by_the_reconciler_exactly_once(
    stack: Any, unique: str, redis_client: Any, reconciler: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"bulk-{unique}"  # no worker consumes it yet
    pushes: list[int] = []
    real_execute = celery_publisher._execute

    def broker_gone_at_the_second_push(commands: Any, client: Any) -> None:
        pushes.append(len(commands.commands))
        if len(pushes) == 2:
            raise redis.ConnectionError("Redis went away half-way through the bulk")
        real_execute(commands, client)

    monkeypatch.setattr(celery_publisher, "PUSH_CHUNK", 10)
    monkeypatch.setattr(celery_publisher, "_execute", broker_gone_at_the_second_push)

    # When the broker fails after the first 10 of 30 messages
    ids = PendingDispatch("tests.counted", {"queue": queue}).dispatch_many(
        [{"key": f"{unique}-{i}"} for i in range(30)]
    )
    monkeypatch.setattr(celery_publisher, "_execute", real_execute)

    # Then the dispatch is accepted: every job is recorded, 10 messages are queued
    assert len(ids) == 30 and pushes == [10, 10]
    assert [recorded(job_id).status for job_id in ids] == ["pending"] * 30
    assert broker_depth(redis_client, queue) == 10
    # And while those 10 wait, the reconciler cannot tell the others are lost: it publishes none
    assert reconciler.run_once().republished == 0

    late = WorkerProcess(tmp_path / "bulk.log", queues=queue, concurrency=1, hostname=f"bulk-{unique}@%h")
    try:
        # Once the queue moved past them, the 20 missing ones are published again, once
        report = reconcile_until(reconciler, lambda r: r.republished > 0, "the missing messages to be published")
        assert report.republished == 20
        for job_id in ids:
            wait_status(job_id, "completed")
        assert reconciler.run_once().republished == 0
    finally:
        late.stop()
    assert [runs(redis_client, f"{unique}-{i}") for i in range(30)] == [1] * 30
    wait_for(lambda: broker_depth(redis_client, queue) == 0, what="an empty queue")
