"""Dispatch -> real worker -> recorder -> SQL history (E1, E2, F1, F5, J1, J2)."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
from sqlalchemy import select

from app.config import get_settings
from app.db import session_scope
from app.errors import ValidationError
from app.kernel.dispatching import find_definition
from app.models import JobAttempt, JobExecution
from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def row(job_id: str) -> JobExecution | None:
    with session_scope() as session:
        return session.get(JobExecution, job_id)


def wait_status(job_id: str, *statuses: str, timeout: float = 30) -> JobExecution:
    return wait_for(
        lambda: (r := row(job_id)) is not None and r.status in statuses and r,
        timeout=timeout,
        what=f"job {job_id} to be {statuses}",
    )


def attempts(job_id: str) -> list[JobAttempt]:
    with session_scope() as session:
        query = select(JobAttempt).where(JobAttempt.execution_id == job_id).order_by(JobAttempt.number)
        return list(session.scalars(query))


def test_job_class_dispatch_records_completed_row_with_result_and_timings(stack: Any) -> None:
    from tasks.demo import Echo

    job_id = Echo.on_queue("default").with_priority(9).with_tags("welcome").dispatch(value={"n": 7})
    done = wait_status(job_id, "completed")
    assert done.result == {"n": 7}
    assert done.job_class == "demo.echo"
    assert done.priority == 9
    assert done.tags == ["welcome"]
    assert done.payload == {"value": {"n": 7}}
    assert done.attempts == 1
    assert done.worker_id and done.worker_id.startswith("test-worker@")
    assert done.execution_time_ms is not None and done.execution_time_ms >= 0
    assert done.memory_usage_mb is not None
    assert done.started_at is not None and done.completed_at is not None
    assert done.started_at <= done.completed_at


def test_plain_celery_task_is_tracked(stack: Any) -> None:
    from tasks.demo import add

    result = add.delay(2, 3)
    done = wait_status(result.id, "completed")
    assert done.result == 5
    assert done.job_class == "demo.add"
    assert done.payload == {"args": [2, 3], "kwargs": {}}


def test_retries_follow_backoff_and_count_attempts(stack: Any, unique: str) -> None:
    from tests.sample_jobs import RetryingJob

    job_id = RetryingJob.dispatch(key=unique, failures=2)
    done = wait_status(job_id, "completed")
    assert done.result == 3
    assert done.attempts == 3
    timeline = attempts(job_id)
    assert [a.status for a in timeline] == ["retrying", "retrying", "completed"]
    assert "failure 1" in (timeline[0].error_message or "")
    # backoff [0, 1]: the third attempt starts at least a second after the second failed
    assert timeline[1].finished_at is not None
    assert (timeline[2].started_at - timeline[1].finished_at).total_seconds() >= 0.9


def test_final_failure_runs_failed_hook_and_keeps_error(stack: Any, unique: str, redis_client: Any) -> None:
    from tests.sample_jobs import RetryingJob

    job_id = RetryingJob.dispatch(key=unique, failures=10)
    failed = wait_status(job_id, "failed")
    assert failed.attempts == 3 and failed.max_attempts == 3
    assert failed.error_message == f"ValueError: failure 3 for {unique}"
    assert failed.exception_type == "ValueError"
    assert "Traceback" in (failed.exception_trace or "")
    assert failed.failed_at is not None
    hook = wait_for(lambda: redis_client.get(f"tests:failed-hook:{job_id}"), what="failed() hook")
    assert hook.decode() == f"ValueError: failure 3 for {unique}"


def test_dont_retry_on_fails_at_once(stack: Any, unique: str) -> None:
    from tests.sample_jobs import RetryingJob

    job_id = RetryingJob.dispatch(key=unique, permanent=True)
    failed = wait_status(job_id, "failed")
    assert failed.attempts == 1
    assert failed.exception_type == "PermanentError"


def test_decorated_function_job_runs(stack: Any) -> None:
    from tests.sample_jobs import decorated

    job_id = decorated.dispatch(x=21)
    assert wait_status(job_id, "completed").result == 42


def test_dispatch_now_runs_in_process_and_is_recorded(stack: Any, unique: str) -> None:
    from tests.sample_jobs import decorated

    assert decorated.dispatch_now(x=5, marker=unique) == 10

    def recorded() -> JobExecution | None:
        with session_scope() as session:
            rows = session.scalars(select(JobExecution).where(JobExecution.job_class == "tests.decorated"))
            return next(
                (r for r in rows if (r.payload or {}).get("marker") == unique and r.status == "completed"),
                None,
            )

    done = wait_for(recorded, what="dispatch_now execution row")
    assert done.result == 10 and done.attempts == 1


def test_dispatch_if_and_unless() -> None:
    from tasks.demo import Echo

    assert Echo.dispatch_if(False, value=1) is None
    assert Echo.dispatch_unless(True, value=1) is None


def test_inactive_definition_refuses_code_dispatch(stack: Any) -> None:
    from app.jobs.celery_backend import sync_registry_definitions
    from tasks.demo import Echo

    sync_registry_definitions()
    tenant = get_settings().default_tenant  # code dispatch's tenant; other tests may give it its own values
    with session_scope() as session:
        definition = find_definition(session, "demo.echo", tenant)
        assert definition is not None
        definition.is_active = False
    try:
        with pytest.raises(ValidationError, match="inactive"):
            Echo.dispatch(value=1)
    finally:
        with session_scope() as session:
            definition = find_definition(session, "demo.echo", tenant)
            assert definition is not None
            definition.is_active = True


def test_worker_killed_mid_task_reruns_job_and_history_shows_both_attempts(
    stack: Any, unique: str, redis_client: Any
) -> None:
    from tests.sample_jobs import MarkerJob

    job_id = MarkerJob.dispatch(key=unique, seconds=30)
    pid = int(wait_for(lambda: redis_client.get(f"tests:marker:{unique}:pid"), what="job to start"))
    wait_status(job_id, "processing")
    os.kill(pid, signal.SIGKILL)
    done = wait_status(job_id, "completed", timeout=60)
    assert done.result == "run 2"
    assert done.attempts == 2
    timeline = attempts(job_id)
    # The killed process's attempt is shown as lost (the infrastructure's failure, not the
    # job's: MarkerJob's own retry budget is untouched), then the run that completed.
    assert [a.status for a in timeline] == ["lost", "completed"]
    assert "worker lost" in (timeline[0].error_message or "")
    assert any("Worker lost" in note["text"] for note in done.notes or [])
    # the worker survived and keeps working
    from tasks.demo import Echo

    assert wait_status(Echo.dispatch(value="after"), "completed").result == "after"


def test_job_that_kills_its_worker_every_time_ends_failed_not_looping(stack: Any) -> None:
    from tasks.demo import Echo
    from tests.sample_jobs import PoisonJob

    job_id = PoisonJob.dispatch()
    failed = wait_status(job_id, "failed", timeout=90)
    # Run again whatever its own retry budget (max_tries = 2), until it has killed its
    # worker CELERIAC_WORKER_LOSS_LIMIT (3) times; the message says so.
    assert "killed its worker 3 times" in (failed.error_message or "")
    assert failed.exception_type == "WorkerLost"
    assert wait_status(Echo.dispatch(value="alive"), "completed").result == "alive"
