"""The pytest plugins' parts that need no worker: the event log, the app setting, fake_queue."""

from __future__ import annotations

import threading
from typing import Any

import pytest

#: Loaded as plugins here, so imported by pytest first (a plain import before would keep
#: pytest from rewriting their asserts, a warning this suite turns into an error).
pytest_plugins = ["pytester", "app.testing_plugin"]


def EventLog() -> Any:  # noqa: N802 - stands for the class
    from celeriac.pytest_plugin import EventLog as log_class

    return log_class()


def _event(job_id: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": kind, "id": job_id, **fields}


def test_the_event_log_keeps_each_jobs_events_in_order() -> None:
    log = EventLog()
    for event in (_event("a", "pub"), _event("b", "pub"), _event("a", "start"), _event("a", "ok", res=3)):
        log.record(event)

    assert log.kinds("a") == ["pub", "start", "ok"]
    assert log.outcome("a", timeout=0) == _event("a", "ok", res=3)
    assert log.wait("a", "completed", timeout=0)["res"] == 3  # a status name stands for its event kind


def test_waiting_returns_as_soon_as_the_event_is_emitted() -> None:
    log = EventLog()
    log.record(_event("a", "pub"))
    emitter = threading.Timer(0.05, log.record, args=(_event("a", "fail", err="boom"),))
    emitter.start()

    assert log.outcome("a", timeout=10)["err"] == "boom"
    emitter.join()


def test_a_wait_that_times_out_says_what_the_job_did() -> None:
    log = EventLog()
    log.record(_event("a", "pub"))
    log.record(_event("a", "start"))
    log.record(_event("a", "retry"))

    with pytest.raises(
        AssertionError,
        match=r"job a: no cancel / fail / ok / reject event within 0.01s; its events so far: pub, start, retry",
    ):
        log.outcome("a", timeout=0.01)


def test_fake_queue_fixture_captures_dispatches(fake_queue: Any) -> None:
    from tests.sample_jobs import MarkerJob

    MarkerJob.dispatch(key="k")

    fake_queue.assert_pushed(MarkerJob, lambda job: job.payload == {"key": "k"})


def test_the_worker_without_an_app_fails_saying_how_to_name_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(celeriac_worker):\n    pass\n")

    result = pytester.runpytest_inprocess("-p", "celeriac.pytest_plugin", "-p", "no:cacheprovider")

    result.stdout.fnmatch_lines(["*celeriac_worker needs your Celery app*celeriac_app*"])
    assert result.ret != 0


def test_an_app_that_cannot_be_imported_is_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(celeriac_worker):\n    pass\n")

    result = pytester.runpytest_inprocess(
        "-p", "celeriac.pytest_plugin", "-p", "no:cacheprovider", "--celeriac-app", "no_such_project.celery:app"
    )

    result.stdout.fnmatch_lines(["*celeriac_app = 'no_such_project.celery:app': cannot import it*"])
