"""Job middleware (J11): order, payload and result passing, hooks, built-ins.

Jobs run through Celery's `task.apply` (the same `_run_job` a worker runs), in this process.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from app.jobs import Job
from app.jobs.middleware import (
    Authorize,
    CallNext,
    Logging,
    Middleware,
    NotAuthorized,
    RetryPolicy,
    Timing,
)

pytestmark = [pytest.mark.redis]

calls: list[str] = []


class Tag(Middleware):
    """Hook-style middleware that notes each hook in `calls`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def before(self, job: Job, payload: dict[str, Any]) -> None:
        calls.append(f"{self.name}:before")

    def after(self, job: Job, payload: dict[str, Any], result: Any) -> None:
        calls.append(f"{self.name}:after={result}")

    def on_error(self, job: Job, payload: dict[str, Any], exc: BaseException) -> None:
        calls.append(f"{self.name}:error={type(exc).__name__}")

    def failed(self, job: Job, exc: BaseException) -> None:
        calls.append(f"{self.name}:failed")


def double_input(job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
    """A plain function is middleware too: it may change the payload and the result."""
    calls.append("double_input")
    return call_next({**payload, "n": payload["n"] * 2}) + 1


class Ordered(Job):
    name = "tests.mw.ordered"
    middleware = [Tag("outer"), double_input, Tag("inner")]

    def handle(self, n: int) -> int:
        calls.append(f"handle({n})")
        return n


class Broken(Job):
    name = "tests.mw.broken"
    max_tries = 1
    middleware = [Tag("outer")]

    def handle(self) -> None:
        raise ValueError("boom")

    def failed(self, exc: BaseException) -> None:
        calls.append("job:failed")


class ShortCircuit(Middleware):
    def __call__(self, job: Job, payload: dict[str, Any], call_next: CallNext) -> Any:
        return "cached"


class Cached(Job):
    name = "tests.mw.cached"
    middleware = [ShortCircuit()]

    def handle(self) -> str:
        calls.append("handle")
        return "computed"


@pytest.fixture(autouse=True)
def reset() -> None:
    calls.clear()


def run(job_cls: type[Job], **payload: Any) -> Any:
    return job_cls.task.apply(kwargs=payload)


def test_stack_runs_outermost_first_around_handle() -> None:
    result = run(Ordered, n=5)
    assert result.get() == 11
    assert calls == [
        "outer:before",
        "double_input",
        "inner:before",
        "handle(10)",
        "inner:after=10",
        "outer:after=11",
    ]


def test_error_passes_through_hooks_and_failed_hooks_run_once_job_first() -> None:
    result = run(Broken)
    assert result.state == "FAILURE" and isinstance(result.result, ValueError)
    assert calls == ["outer:before", "outer:error=ValueError", "job:failed", "outer:failed"]


def test_middleware_may_answer_without_calling_handle() -> None:
    assert run(Cached).get() == "cached"
    assert calls == []


class Admins(Job):
    name = "tests.mw.admins"
    max_tries = 3
    middleware = [Tag("audit"), Authorize(lambda job, payload: payload.get("role") == "admin", reason="admins only")]

    def handle(self, role: str) -> str:
        return f"ran for {role}"


def test_authorize_runs_allowed_jobs() -> None:
    assert run(Admins, role="admin").get() == "ran for admin"


def test_authorize_refusal_fails_for_good_with_a_clear_error() -> None:
    result = run(Admins, role="guest")
    assert result.state == "FAILURE", "no retry although attempts are left"
    assert isinstance(result.result, NotAuthorized)
    assert "tests.mw.admins" in str(result.result) and "admins only" in str(result.result)
    assert "audit:failed" in calls


class Timed(Job):
    name = "tests.mw.timed"

    class Reader(Middleware):
        def after(self, job: Job, payload: dict[str, Any], result: Any) -> None:
            calls.append(f"took>=50ms:{job.duration_ms >= 50}")  # type: ignore[attr-defined]

    middleware = [Reader(), Timing()]

    def handle(self) -> None:
        time.sleep(0.05)  # the work being timed


def test_timing_exposes_the_duration_on_the_job() -> None:
    run(Timed).get()
    assert calls == ["took>=50ms:True"]


class Logged(Job):
    name = "tests.mw.logged"
    middleware = [Logging()]

    def handle(self, secret: str) -> str:
        return "ok"


def test_logging_logs_start_and_outcome_but_not_the_payload(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with caplog.at_level(logging.INFO, logger="celeriac.jobs"):
        run(Logged, secret="hunter2").get()
    text = caplog.text
    assert "tests.mw.logged" in text and "attempt 1 started" in text and "done in" in text
    assert "hunter2" not in text


class Picky(Job):
    name = "tests.mw.picky"
    max_tries = 3
    backoff = [0]
    middleware = [RetryPolicy(backoff=[7], dont_retry_on=(KeyError,))]

    def handle(self, error: str) -> None:
        raise {"key": KeyError, "value": ValueError}[error]("nope")


def test_retry_policy_decides_what_is_retried_and_when() -> None:
    from app.jobs.base import _run_job  # the decision, without a broker to retry through

    class FakeTask:
        class request:
            id = "job-1"
            retries = 0
            celeriac = {"max_attempts": 3}

        @staticmethod
        def retry(exc: BaseException, countdown: float, max_retries: int) -> Exception:
            calls.append(f"retry in {countdown}")
            return RuntimeError("retried")

    with pytest.raises(RuntimeError, match="retried"):
        _run_job(Picky, FakeTask, {"error": "value"})
    assert calls == ["retry in 7"], "the policy's backoff, not the class's"
    with pytest.raises(KeyError):
        _run_job(Picky, FakeTask, {"error": "key"})
    assert calls == ["retry in 7"], "KeyError is never retried"
