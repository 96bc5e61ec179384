"""Global rate limits (J10) and middleware (J11) on real worker processes.

Two workers consume the rate-limit queues. Every job stamps its start with the Redis
server's clock, so starts from both workers compare on one clock. The limiter counts a
job when it is admitted; the stamp follows a few milliseconds later, after delivery, so
windows are checked with a small allowance (WINDOW_SLACK_S) for that delay.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import JobAttempt, JobExecution
from app.ratelimit import queue_limits
from app.redis_client import get_redis
from tests.conftest import REDIS_URL, wait_for
from tests.integration.conftest import RecorderThread, WorkerProcess
from tests.sample_jobs_ratelimit import (
    API_QUEUE,
    CONFIG_QUEUE,
    RL_QUEUE,
    CappedJob,
    GuardedJob,
    LimitedJob,
    NearSlotJob,
    PerUserJob,
    plain_stamp,
    stamps,
)

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Delivery delay allowed between admission and the job's own start stamp.
WINDOW_SLACK_S = 0.15
#: The API-set limit of API_QUEUE and the configured one of CONFIG_QUEUE.
API_LIMIT = (1, 2)
CONFIG_LIMIT = (2, 2)


@pytest.fixture(scope="module")
def rl_workers(tmp_path_factory: pytest.TempPathFactory, recorder: RecorderThread) -> Iterator[list[WorkerProcess]]:
    """Two workers with the rate-limit test jobs, a configured queue limit and an API-set one."""
    queue_limits.set_limit(get_redis(REDIS_URL), API_QUEUE, *API_LIMIT)
    saved = {name: os.environ.get(name) for name in ("CELERIAC_TASK_MODULES", "CELERIAC_QUEUE_RATE_LIMITS")}
    os.environ["CELERIAC_TASK_MODULES"] = f"{saved['CELERIAC_TASK_MODULES']},tests.sample_jobs_ratelimit"
    os.environ["CELERIAC_QUEUE_RATE_LIMITS"] = f"{CONFIG_QUEUE}={CONFIG_LIMIT[0]}/{CONFIG_LIMIT[1]}"
    workers: list[WorkerProcess] = []
    try:
        for n in (1, 2):
            log = tmp_path_factory.mktemp(f"rl-worker-{n}") / "worker.log"
            workers.append(WorkerProcess(log, queues=f"{RL_QUEUE},{CONFIG_QUEUE},{API_QUEUE}", hostname=f"rl{n}@%h"))
        yield workers
    finally:
        for proc in workers:
            proc.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def row(job_id: str) -> JobExecution | None:
    with session_scope() as session:
        return session.get(JobExecution, job_id)


def finished(job_id: str, timeout: float = 40) -> JobExecution:
    return wait_for(
        lambda: (r := row(job_id)) is not None and r.status in ("completed", "failed") and r,
        timeout=timeout,
        what=f"job {job_id} to finish",
    )


def attempt_count(job_id: str) -> int:
    with session_scope() as session:
        return len(list(session.scalars(select(JobAttempt).where(JobAttempt.execution_id == job_id))))


def starts(key: str, count: int, timeout: float = 40) -> list[dict[str, Any]]:
    return wait_for(lambda: (found := stamps(key)) and len(found) >= count and found, timeout=timeout,
                    what=f"{count} runs of {key}")  # fmt: skip


def assert_cap(times: list[float], limit: int, per: float) -> None:
    """No window of `per` seconds (less the delivery allowance) holds more than `limit` starts."""
    times = sorted(times)
    for i, start in enumerate(times):
        inside = [t for t in times[i:] if t < start + per - WINDOW_SLACK_S]
        assert len(inside) <= limit, f"{len(inside)} starts within {per}s from {start}: {times}"


def test_over_limit_job_is_requeued_without_using_an_attempt(rl_workers: Any, unique: str) -> None:
    ids = [LimitedJob.dispatch(key=unique), LimitedJob.dispatch(key=unique)]

    def throttled() -> JobExecution | None:
        # Two workers: either job may be the one that finds the slot taken.
        return next((r for job_id in ids if (r := row(job_id)) is not None and r.throttled_until is not None), None)

    waiting = wait_for(throttled, what="one job's row to show throttled_until")
    assert waiting.status == "pending" and waiting.attempts == 0
    done = finished(waiting.id)
    assert done.status == "completed" and done.result == 1, "ran as its first attempt"
    assert done.attempts == 1 and attempt_count(waiting.id) == 1
    assert done.throttled_until is None, "cleared once it started"
    assert done.max_attempts == 2
    assert all(finished(job_id).attempts == 1 for job_id in ids)
    runs = starts(unique, 2)
    assert runs[1]["t"] - runs[0]["t"] >= 3 - WINDOW_SLACK_S, "one run per 3 s"
    assert waiting.throttled_until.timestamp() <= runs[1]["t"] + WINDOW_SLACK_S


def test_a_near_slot_is_waited_for_in_the_worker_not_requeued(rl_workers: Any, unique: str) -> None:
    ids = [NearSlotJob.dispatch(key=unique) for _ in range(2)]
    rows = [finished(job_id) for job_id in ids]
    assert all(r.status == "completed" and r.attempts == 1 for r in rows)
    logs = "".join(proc.log_path.read_text(errors="replace") for proc in rl_workers)
    requeued = [line for line in logs.splitlines() if "re-queued" in line and any(i in line for i in ids)]
    assert requeued == [], "waited in the worker, not re-queued"
    times = sorted(r["t"] for r in starts(unique, 2))
    assert all(b - a >= 0.6 - WINDOW_SLACK_S for a, b in zip(times, times[1:], strict=False)), times


def test_global_cap_holds_across_two_workers(rl_workers: Any, unique: str) -> None:
    ids = [CappedJob.dispatch(key=unique) for _ in range(20)]
    runs = starts(unique, 20)
    assert_cap([r["t"] for r in runs], limit=5, per=2)
    assert {r["worker"].split("@")[0] for r in runs} == {"rl1", "rl2"}, "both workers took part"
    span = max(r["t"] for r in runs) - min(r["t"] for r in runs)
    assert span >= 6 - WINDOW_SLACK_S, "20 jobs at 5 per 2 s need 6 s at least"
    assert span < 12, "and waiting jobs came back promptly"
    rows = [finished(job_id) for job_id in ids]
    assert all(r.status == "completed" and r.attempts == 1 for r in rows)


@pytest.mark.parametrize(("queue", "cap"), [(CONFIG_QUEUE, CONFIG_LIMIT), (API_QUEUE, API_LIMIT)])
def test_queue_limit_holds_for_plain_celery_tasks(rl_workers: Any, unique: str, queue: str, cap: Any) -> None:
    for _ in range(cap[0] * 2 + 1):
        plain_stamp.apply_async(args=[unique], queue=queue)
    runs = starts(unique, cap[0] * 2 + 1)
    assert_cap([r["t"] for r in runs], limit=cap[0], per=cap[1])


def test_per_user_limit_lets_other_users_run(rl_workers: Any, unique: str) -> None:
    user = int(time.time() * 1000)  # a user no earlier run has used
    first = PerUserJob.dispatch(key=unique, user_id=user)
    other = PerUserJob.dispatch(key=unique, user_id=user + 1)
    held = PerUserJob.dispatch(key=unique, user_id=user)
    assert finished(first).status == "completed" and finished(other).status == "completed"
    waiting = wait_for(lambda: (r := row(held)) is not None and r.throttled_until is not None and r,
                       what="the same user's second job to be throttled")  # fmt: skip
    assert waiting.status == "pending"
    assert 50 < waiting.throttled_until.timestamp() - time.time() <= 60, "one per user and minute"


def test_bad_rate_limit_key_fails_the_job_with_a_clear_error(rl_workers: Any, unique: str) -> None:
    job_id = PerUserJob.dispatch(key=unique)  # no user_id for "user:{user_id}"
    failed = finished(job_id)
    assert failed.status == "failed" and failed.attempts == 1
    assert "user:{user_id}" in (failed.error_message or "") and "user_id" in (failed.error_message or "")


def test_authorize_refusal_fails_for_good_on_a_worker(rl_workers: Any, unique: str) -> None:
    refused = GuardedJob.dispatch(key=unique, role="guest")
    allowed = GuardedJob.dispatch(key=unique, role="admin")
    failed = finished(refused)
    assert failed.status == "failed" and failed.attempts == 1 and failed.max_attempts == 3
    assert "needs role admin" in (failed.error_message or "")
    assert failed.exception_type == "NotAuthorized"
    hook = wait_for(lambda: stamps(f"failed:{refused}"), what="the middleware's failed hook")
    assert "needs role admin" in hook[0]["error"]
    assert finished(allowed).status == "completed"
