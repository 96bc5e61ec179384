"""pytest fixtures for projects on Celeriac's own app: `pytest -p app.testing_plugin`.

Loads `celeriac.pytest_plugin` (the worker and the events) and points its `celeriac_app` at
Celeriac's app (`app.celery_app`) unless you named another, then adds:

- `celeriac_recorded`: `celeriac_recorded(job_id)` runs the recorder's own code in the test's
  thread, writing the event stream into the test's database, until the job's row has a final
  status (or `status=` the one you name), and returns the row (`JobExecution`: status,
  attempts, result, error_message...). `celeriac_recorded.attempts(job_id)` lists its attempts.
- `celeriac_recorder`: that `Recorder`, whose `drain()` writes what is in the stream now.
- `fake_queue`: `app.testing.fake_queue()` around the test (nothing is queued; assert on it).

Celeriac's modules are imported inside the fixtures: they read DATABASE_URL and REDIS_URL when
first imported, and your conftest.py sets those after plugins load. Guide: docs/testing.md.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from app.jobs.fake import FakeQueue
    from app.models import JobAttempt, JobExecution
    from app.recorder import Recorder

pytest_plugins = ["celeriac.pytest_plugin"]

#: The app `celeriac_worker` runs unless `--celeriac-app` or the `celeriac_app` ini option names one.
CELERIAC_APP = "app.celery_app:celery_app"
#: Longest wait for new events in one drain, in ms: short, since the caller polls its row.
DRAIN_BLOCK_MS = 50


def pytest_celeriac_default_app(config: pytest.Config) -> str:
    """Celeriac's app, unless `--celeriac-app` or the `celeriac_app` ini option names another."""
    return CELERIAC_APP


class TestRecorder:
    """The recorder's read-write-acknowledge step, run on demand in the test's thread."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def drain(self) -> int:
        """Write the events waiting in the stream (and publish what they released). Returns events written."""
        written = self.recorder.run_once()
        self.recorder.composition.safe_drain()  # chain steps and batch callbacks, as Recorder.run does
        return written


class Recorded:
    """`recorded(job_id)`: the job's row once the recorder wrote a final status (or `status`)."""

    def __init__(self, recorder: TestRecorder, database_url: str) -> None:
        self._recorder = recorder
        self._database_url = database_url

    def __call__(self, job_id: str, *, status: str | None = None, timeout: float = 20.0) -> JobExecution:
        """Drain the stream until job `job_id`'s row is final (or has `status`), and return it.

        Raises:
            AssertionError: not so within `timeout` seconds; says what the row holds instead.
        """
        from app.models.job_execution import TERMINAL_STATUSES

        deadline = time.monotonic() + timeout
        while True:
            self._recorder.drain()
            row = self.row(job_id)
            if row is not None and (row.status == status if status else row.status in TERMINAL_STATUSES):
                return row
            if time.monotonic() >= deadline:
                found = "no row" if row is None else f"status {row.status!r} after {row.attempts} attempt(s)"
                raise AssertionError(
                    f"job {job_id}: expected {status or 'a final status'} within {timeout:g}s, found {found}"
                )

    def row(self, job_id: str) -> JobExecution | None:
        """The job's row as it is now, without waiting (None: nothing recorded yet)."""
        from app.db import session_scope
        from app.models import JobExecution

        with session_scope(self._database_url) as session:
            found: JobExecution | None = session.get(JobExecution, job_id)
            return found

    def attempts(self, job_id: str) -> list[JobAttempt]:
        """The job's attempt rows, first attempt first (as recorded so far)."""
        from sqlalchemy import select

        from app.db import session_scope
        from app.models import JobAttempt

        with session_scope(self._database_url) as session:
            query = select(JobAttempt).where(JobAttempt.execution_id == job_id).order_by(JobAttempt.number)
            return list(session.scalars(query))


def _require_tables(database_url: str) -> None:
    """Fails the test, without a traceback, when the test database has no Celeriac tables."""
    from sqlalchemy import inspect

    from app.db import get_engine

    if not inspect(get_engine(database_url)).has_table("job_executions"):
        pytest.fail(
            f"the test database {database_url} has no Celeriac tables: run `flask db upgrade` against it"
            " (DATABASE_URL) before the tests; docs/testing.md shows a conftest.py that does",
            pytrace=False,
        )


@pytest.fixture()
def celeriac_recorder() -> Iterator[TestRecorder]:
    """A recorder of the test database, drained on demand (`drain()`), one consumer per test process."""
    from app.config import get_settings
    from app.jobs.celery_backend import sync_registry_definitions
    from app.recorder import Recorder
    from app.redis_client import get_redis

    settings = dataclasses.replace(get_settings(), recorder_block_ms=DRAIN_BLOCK_MS, recorder_linger_ms=0)
    _require_tables(settings.database_url)
    sync_registry_definitions()  # as the recorder process does when it starts
    recorder = Recorder(settings, get_redis(settings.redis_url), name=f"pytest-{os.getpid()}")
    recorder.ensure_group()
    yield TestRecorder(recorder)
    recorder.escalation.stop()


@pytest.fixture()
def celeriac_recorded(celeriac_recorder: TestRecorder) -> Recorded:
    """`celeriac_recorded(job_id, status=None, timeout=20.0)`: the job's recorded row."""
    return Recorded(celeriac_recorder, celeriac_recorder.recorder.settings.database_url)


@pytest.fixture()
def fake_queue() -> Iterator[FakeQueue]:
    """Dispatches during the test are captured, not queued (app.testing.fake_queue)."""
    from app.testing import fake_queue as capture

    with capture() as queue:
        yield queue
