"""Long delays and backoffs held in Celeriac's scheduled set, with a real worker and a real
recorder process (`python -m app.recorder`): released when due, once, after a Redis data loss
too; run now; cancel. A short threshold (1 s) stands in for "longer than a broker ETA"."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app import redis_keys
from app.config import get_settings
from app.db import session_scope
from app.kernel.scheduled import ScheduledSet
from app.models import JobExecution
from app.monitoring.queue_stats import broker_depth
from tests.conftest import _CLAIM, ROOT, wait_for
from tests.integration.conftest import RecorderThread, WorkerProcess
from tests.sample_jobs import MarkerJob, RetryingJob

pytestmark = pytest.mark.redis

QUEUE = "scheduled-it"
QUICK_ENV = {"CELERIAC_SCHEDULED_AFTER_S": "1", "CELERIAC_MAX_DELAY_S": str(30 * 24 * 3600)}


class RecorderProcess:
    """The recorder as production runs it, with the short threshold and a quick reconciler."""

    def __init__(self, log_path: Path) -> None:
        self.log = open(log_path, "ab")
        env = {**os.environ, **QUICK_ENV, "CELERIAC_RECONCILE_INTERVAL_S": "2"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.recorder"], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@contextlib.contextmanager
def quick_stack(logs: Path, queue: str, name: str) -> Iterator[None]:
    """A worker on `queue` and a recorder process, both with a 1 s scheduled-set threshold.

    One recorder on the event stream, as `make run` runs: the session's recorder thread
    (started by earlier modules) pauses while this recorder process runs.
    """
    worker = WorkerProcess(logs / "worker.log", queues=queue, hostname=f"{name}-worker@%h", env=QUICK_ENV)
    with RecorderThread.all_paused():
        recorder = RecorderProcess(logs / "recorder.log")
        try:
            yield
        finally:
            recorder.stop()
            worker.stop()


@pytest.fixture(scope="module")
def held_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with quick_stack(tmp_path_factory.mktemp("scheduled"), QUEUE, "scheduled"):
        yield


@pytest.fixture()
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process dispatches with the same short threshold as the worker and the recorder."""
    settings = dataclasses.replace(get_settings(), scheduled_after_s=1, max_delay_s=30 * 24 * 3600)
    monkeypatch.setattr("app.jobs.dispatch.get_settings", lambda: settings)


def _row(job_id: str) -> JobExecution:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


def _runs(redis_client: Any, key: str) -> int:
    return int(redis_client.get(f"tests:marker:{key}:runs") or 0)


def _after_next_reconcile(redis_client: Any) -> None:
    """Until the recorder's reconciler, and the set's rebuild after it, ran once more (two
    runs begin: the first one's rebuild is over when the second begins)."""
    for _ in range(2):
        before = redis_client.hget(redis_keys.RECOVERY_STATS, "reconciled_at")
        wait_for(
            lambda seen=before: redis_client.hget(redis_keys.RECOVERY_STATS, "reconciled_at") != seen,
            what="a reconcile",
        )


def test_redis_losing_its_data_before_the_due_time_still_runs_the_job_once(
    held_stack: None, quick: None, redis_client: Any, unique: str
) -> None:
    job_id = MarkerJob.on_queue(QUEUE).delay(4).dispatch(key=unique)
    assert ScheduledSet(redis_client).scores([job_id]) != [None]
    # Redis restarts without its data (this run's database only; the test run's claim stays).
    claim = redis_client.get(_CLAIM)
    pipe = redis_client.pipeline(transaction=True)
    pipe.flushdb()
    pipe.set(_CLAIM, claim)
    pipe.execute()
    row = wait_for(lambda: (r := _row(job_id)).status == "completed" and r, timeout=40, what="the job to run")
    assert row.due_at is None and _runs(redis_client, unique) == 1
    _after_next_reconcile(redis_client)
    assert _runs(redis_client, unique) == 1 and ScheduledSet(redis_client).scores([job_id]) == [None]


def test_a_long_delay_waits_in_the_set_not_the_broker_and_runs_once_when_due(
    held_stack: None, quick: None, redis_client: Any, unique: str, client: Any, auth: Any
) -> None:
    job_id = MarkerJob.on_queue(QUEUE).delay(3).for_tenant("acme").dispatch(key=unique)
    row = _row(job_id)
    assert row.status == "pending" and row.due_at is not None and row.published_at is None
    assert broker_depth(redis_client, QUEUE) == 0  # no ETA message held by any worker
    assert not any(job_id.encode() in value for value in redis_client.hvals("unacked"))
    answer = client.get(f"/api/jobs/{job_id}", headers=auth("viewer")).get_json()
    assert answer["status"] == "pending" and answer["due_at"] == row.due_at.isoformat()
    done = wait_for(lambda: (r := _row(job_id)).status == "completed" and r, timeout=30, what="the job to run")
    assert done.started_at is not None and done.started_at >= row.due_at - timedelta(milliseconds=500)
    assert done.started_at <= row.due_at + timedelta(seconds=5) and done.due_at is None
    _after_next_reconcile(redis_client)
    assert _runs(redis_client, unique) == 1


def test_run_now_releases_a_job_held_for_hours(
    held_stack: None, quick: None, redis_client: Any, unique: str, client: Any, auth: Any
) -> None:
    job_id = MarkerJob.on_queue(QUEUE).delay(6 * 3600).for_tenant("acme").dispatch(key=unique)
    response = client.post(f"/api/jobs/{job_id}/run-now", headers=auth("operator"))
    assert response.status_code == 202 and response.get_json()["id"] == job_id
    wait_for(lambda: _row(job_id).status == "completed", timeout=30, what="the job to run now")
    assert _runs(redis_client, unique) == 1
    again = client.post(f"/api/jobs/{job_id}/run-now", headers=auth("operator"))
    assert again.status_code == 409 and again.headers["Content-Type"].startswith("application/problem+json")
    assert client.post(f"/api/jobs/{job_id}/run-now", headers=auth("viewer")).status_code == 403


def test_cancel_removes_a_held_job_from_the_set(
    held_stack: None, quick: None, redis_client: Any, unique: str, client: Any, auth: Any
) -> None:
    job_id = MarkerJob.on_queue(QUEUE).delay(3).for_tenant("acme").dispatch(key=unique)
    response = client.post(f"/api/jobs/{job_id}/cancel", headers=auth("operator"))
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert ScheduledSet(redis_client).scores([job_id]) == [None]
    due = _row(job_id).eta
    assert due is not None
    wait_for(lambda: datetime.now(UTC) > due, timeout=10, what="the cancelled job's due time to pass")
    _after_next_reconcile(redis_client)  # its due time passed and the rebuild ran: it never ran
    assert _row(job_id).status == "cancelled" and _runs(redis_client, unique) == 0


def test_a_long_retry_backoff_is_held_in_the_set_and_the_next_attempt_runs_once(
    held_stack: None, quick: None, redis_client: Any, unique: str
) -> None:
    # A backoff of 3 s stands in for hours: past the threshold, so no Celery countdown.
    pending = RetryingJob.on_queue(QUEUE)
    job_id = pending._with(backoff=[3]).dispatch(key=unique, failures=1)
    held = wait_for(lambda: (r := _row(job_id)).due_at is not None and r, timeout=30, what="the retry to be held")
    # (Not `published_at is None`: with two recorders on one stream, as in this test session,
    # a late write can leave the dispatch's time there; the reconciler skips held rows anyway.)
    assert held.status == "retrying" and held.attempts == 1
    assert broker_depth(redis_client, QUEUE) == 0
    done = wait_for(lambda: (r := _row(job_id)).status == "completed" and r, timeout=30, what="the second attempt")
    assert done.result == 2 and done.attempts == 2 and done.due_at is None
    assert int(redis_client.get(f"tests:retrying:{unique}") or 0) == 2
