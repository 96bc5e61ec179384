"""The pytest plugins users load (docs/testing.md), used as a user's test would use them:
a real in-thread worker with tracking on, real Redis, and the recorder writing the test database."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.sample_jobs import RetryingJob, decorated, plain_sleep

pytestmark = [pytest.mark.redis, pytest.mark.worker]
pytest_plugins = ["pytester", "app.testing_plugin"]


@pytest.fixture(autouse=True)
def one_recorder() -> Any:
    """The plugin's recorder is the only one reading the event stream meanwhile, as in a
    user's test session: two recorders on one stream can lose a row's counts (issue 16)."""
    from tests.integration.conftest import RecorderThread

    with RecorderThread.all_paused():
        yield


@pytest.fixture()
def queue() -> str:
    """A queue of this test's own: the session's worker process never takes its jobs."""
    return f"plugin-{uuid.uuid4().hex[:10]}"


@pytest.fixture()
def celeriac_worker_parameters(queue: str) -> dict[str, Any]:
    return {"queues": [queue]}


def test_a_job_runs_on_the_test_worker_and_its_row_is_recorded(
    celeriac_worker: Any, celeriac_recorded: Any, celeriac_events: Any, queue: str
) -> None:
    job_id = decorated.on_queue(queue).dispatch(x=21)

    row = celeriac_recorded(job_id)

    assert (row.status, row.attempts, row.result, row.queue) == ("completed", 1, 42, queue)
    assert row.worker_id and row.execution_time_ms is not None
    assert celeriac_events.kinds(job_id) == ["pub", "start", "ok"]


def test_a_retried_job_shows_each_attempt(celeriac_worker: Any, celeriac_recorded: Any, queue: str) -> None:
    job_id = RetryingJob.on_queue(queue).dispatch(key=uuid.uuid4().hex, failures=1)

    row = celeriac_recorded(job_id)

    assert (row.status, row.attempts, row.max_attempts, row.result) == ("completed", 2, 3, 2)
    attempts = celeriac_recorded.attempts(job_id)
    assert [a.status for a in attempts] == ["retrying", "completed"]
    assert "failure 1" in (attempts[0].error_message or "")


def test_a_plain_celery_task_is_recorded_too(celeriac_worker: Any, celeriac_recorded: Any, queue: str) -> None:
    result = plain_sleep.apply_async(kwargs={"seconds": 0}, queue=queue)

    assert result.get(timeout=20) == 0
    row = celeriac_recorded(result.id)
    assert (row.status, row.job_class, row.result) == ("completed", "tests.plain_sleep", 0)


def test_a_failure_is_recorded_with_its_error(
    celeriac_worker: Any, celeriac_recorded: Any, celeriac_events: Any, queue: str
) -> None:
    job_id = RetryingJob.on_queue(queue).dispatch(key=uuid.uuid4().hex, permanent=True)

    outcome = celeriac_events.outcome(job_id)
    assert (outcome["t"], outcome["exc"]) == ("fail", "PermanentError")
    row = celeriac_recorded(job_id)
    assert (row.status, row.attempts, row.exception_type) == ("failed", 1, "PermanentError")
    assert "permanent failure" in (row.error_message or "")


USER_CONFTEST = """
import pytest


@pytest.fixture()
def celeriac_worker_parameters():
    return {"queues": [QUEUE]}
"""

USER_TEST = """
from tests.sample_jobs import decorated


def test_double(celeriac_worker, celeriac_recorded):
    job_id = decorated.on_queue(QUEUE).dispatch(x=4)

    row = celeriac_recorded(job_id)

    assert (row.status, row.attempts, row.result) == ("completed", 1, 8)
"""


def test_a_users_suite_loads_the_plugin_with_p_and_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, queue: str
) -> None:
    """As a user runs it: `pytest -p app.testing_plugin`, nothing of this suite's conftest."""
    pytester.makeconftest(USER_CONFTEST.replace("QUEUE", repr(queue)))
    pytester.makepyfile(test_user=USER_TEST.replace("QUEUE", repr(queue)))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))

    result = pytester.runpytest_subprocess("-p", "app.testing_plugin", "-p", "no:cacheprovider", timeout=120)

    result.assert_outcomes(passed=1)


SHOP_CELERY = """
import os

import celeriac
from celery import Celery

app = Celery("shop", broker=os.environ["REDIS_URL"], backend=os.environ["REDIS_URL"])
app.conf.task_default_queue = os.environ["SHOP_QUEUE"]
celeriac.instrument(app)


@app.task(bind=True, autoretry_for=(ConnectionError,), max_retries=2, retry_kwargs={"countdown": 0})
def charge(self, amount):
    if self.request.retries == 0:
        raise ConnectionError("the bank is busy")
    return amount
"""

SHOP_TEST = """
import sys

from shop.celery import charge


def test_a_charge_is_retried_then_paid(celeriac_worker, celeriac_events):
    result = charge.delay(5)

    outcome = celeriac_events.outcome(result.id)
    assert (outcome["t"], outcome["res"]) == ("ok", 5)
    assert result.get(timeout=10) == 5
    kinds = celeriac_events.kinds(result.id)
    assert kinds.count("start") == 2 and "retry" in kinds
    assert "app" not in sys.modules  # Celeriac's own app was never needed
"""


@pytest.mark.parametrize("instrumented", [True, False], ids=["instrumented-on-import", "instrumented-by-the-plugin"])
def test_a_project_with_its_own_celery_app_needs_only_the_celeriac_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, queue: str, instrumented: bool
) -> None:
    """A project of its own (not on Celeriac's app): its app named in its ini file, tested with
    `-p celeriac.pytest_plugin` alone; tracked whether its module calls `celeriac.instrument`
    (as docs/adopting.md says) or leaves that to its worker's start-up code."""
    pytester.mkpydir("shop")
    source = SHOP_CELERY if instrumented else SHOP_CELERY.replace("celeriac.instrument(app)", "")
    pytester.path.joinpath("shop", "celery.py").write_text(source)
    pytester.makeini("[pytest]\nceleriac_app = shop.celery:app\n")
    pytester.makepyfile(test_shop=SHOP_TEST)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("SHOP_QUEUE", queue)

    result = pytester.runpytest_subprocess("-p", "celeriac.pytest_plugin", "-p", "no:cacheprovider", timeout=120)

    result.assert_outcomes(passed=1)
