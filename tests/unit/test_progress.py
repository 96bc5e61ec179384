"""Job progress: argument checks, the worker-side throttle, and how the recorder folds reports."""

from __future__ import annotations

import math
import threading
import time
import uuid
from typing import Any

import pytest

from app.db import session_scope
from app.kernel.apply import EventApplier
from app.models import JobExecution
from celeriac import events as ev
from celeriac import progress
from tests.conftest import wait_for

# -- checks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("done", "total", "percent"), [(0, 5, 0), (1, 3, 33), (2.5, 5, 50), (5, 5, 100), (0, 0, 100), (999, 1000, 99)]
)
def test_percent_of_rounds_down_and_reaches_100_only_when_done(done: float, total: float, percent: int) -> None:
    assert progress.percent_of(done, total) == percent


@pytest.mark.parametrize(
    ("done", "total", "error", "words"),
    [
        (6, 5, ValueError, "must not exceed total"),
        (-1, 5, ValueError, ">= 0"),
        (1, -5, ValueError, ">= 0"),
        (math.nan, 5, ValueError, "finite"),
        (1, math.inf, ValueError, "finite"),
        ("1", 5, TypeError, "must be a number"),
        (True, 5, TypeError, "must be a number"),
        (1, None, TypeError, "must be a number"),
    ],
)
def test_bad_progress_arguments_raise_a_clear_error(done: Any, total: Any, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words):
        progress.report(lambda event: None, "job", None, done, total)


def test_message_must_be_text_and_is_clipped() -> None:
    with pytest.raises(TypeError, match="message must be a string"):
        progress.check_message(42)
    assert progress.check_message("x" * 2000) == "x" * progress.MAX_MESSAGE_CHARS


# -- throttle ----------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def done_values(self) -> list[Any]:
        with self.lock:
            return [e["d"] for e in self.events]


def test_a_burst_of_reports_sends_at_most_a_few_and_always_the_last() -> None:
    sink, job_id = Sink(), str(uuid.uuid4())
    for done in range(1000):
        progress.report(sink, job_id, "ak", done, 2000, f"row {done}")
    # The first went at once, the rest is held: the latest one follows within the interval.
    wait_for(lambda: sink.done_values()[-1:] == [999], timeout=5, what="the held report")
    assert len(sink.events) <= 3
    assert sink.events[-1]["msg"] == "row 999" and sink.events[-1]["p"] == 49
    progress.finish(sink, job_id)
    assert sink.done_values()[-1] == 999 and len(sink.events) <= 3


def test_the_last_report_is_sent_when_the_attempt_ends_before_the_timer() -> None:
    sink, job_id = Sink(), str(uuid.uuid4())
    progress.report(sink, job_id, "ak", 1, 10)
    progress.report(sink, job_id, "ak", 2, 10)  # held
    progress.finish(sink, job_id)
    assert sink.done_values() == [1, 2]
    time.sleep(progress.MIN_INTERVAL_S * 2)  # the cancelled timer must not send it again
    assert sink.done_values() == [1, 2]


def test_a_finished_report_is_never_held() -> None:
    sink, job_id = Sink(), str(uuid.uuid4())
    progress.report(sink, job_id, "ak", 1, 10)
    progress.report(sink, job_id, "ak", 10, 10)
    assert sink.done_values() == [1, 10]
    progress.finish(sink, job_id)


# -- recorder ----------------------------------------------------------------------


def _pub(job_id: str, ts: float) -> dict[str, Any]:
    event = ev.published(
        job_id=job_id,
        task="demo.progress",
        queue="default",
        priority=5,
        payload={},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"tenant": "acme"},
    )
    event["ts"] = ts
    return event


def _start(job_id: str, key: str, ts: float, retries: int = 0) -> dict[str, Any]:
    event = ev.started(
        job_id=job_id,
        attempt_key=job_id + key,
        task="demo.progress",
        worker="w",
        retries=retries,
        queue="default",
        payload=None,
    )
    event["ts"] = ts
    return event


def _progress(job_id: str, key: str, done: int, total: int, ts: float, message: str | None = None) -> dict[str, Any]:
    event = ev.progress(
        job_id,
        attempt_key=job_id + key,
        done=done,
        total=total,
        percent=progress.percent_of(done, total),
        message=message,
    )
    event["ts"] = ts
    return event


def _at(event: dict[str, Any], ts: float) -> dict[str, Any]:
    event["ts"] = ts
    return event


def apply(*events: dict[str, Any]) -> None:
    with session_scope() as session:
        EventApplier().apply(session, list(events))


def row_of(job_id: str) -> tuple[str, int | None, int | None, int | None, str | None]:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        return row.status, row.progress, row.progress_done, row.progress_total, row.progress_message


def test_progress_is_recorded_with_done_total_and_message() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _progress(job_id, "a1", 3, 10, 3.0, "3 rows"))
    assert row_of(job_id) == ("processing", 30, 3, 10, "3 rows")


def test_a_late_lower_report_of_the_same_attempt_does_not_move_the_bar_back() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _progress(job_id, "a1", 7, 10, 4.0, "seven"))
    apply(_progress(job_id, "a1", 2, 10, 3.0, "two"))  # older, arriving in a later batch
    assert row_of(job_id) == ("processing", 70, 7, 10, "seven")


def test_completion_shows_100_whatever_was_reported_and_later_reports_change_nothing() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _progress(job_id, "a1", 4, 10, 3.0, "four"))
    apply(_at(ev.succeeded(job_id, job_id + "a1", 10, 0.1, 10), 5.0))
    assert row_of(job_id) == ("completed", 100, 10, 10, "four")
    apply(_progress(job_id, "a1", 6, 10, 4.0, "six"))  # buffered before the outcome, arrives after
    assert row_of(job_id) == ("completed", 100, 10, 10, "four")


def test_a_completed_job_that_never_reported_shows_100() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _at(ev.succeeded(job_id, job_id + "a1", 10, 0.1, 1), 3.0))
    assert row_of(job_id)[:2] == ("completed", 100)


def test_a_failed_job_keeps_how_far_it_got_even_when_the_report_arrives_after_the_failure() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0))
    apply(_at(ev.failed(job_id, job_id + "a1", 10, 0.1, RuntimeError("x"), None), 5.0))
    apply(_progress(job_id, "a1", 3, 4, 4.0, "three"))  # made before the failure
    assert row_of(job_id) == ("failed", 75, 3, 4, "three")
    apply(_progress(job_id, "a1", 4, 4, 6.0, "after"))  # stamped after the end: impossible, ignored
    assert row_of(job_id) == ("failed", 75, 3, 4, "three")


def test_a_new_attempt_starts_from_nothing_and_ignores_the_old_attempts_late_reports() -> None:
    job_id = str(uuid.uuid4())
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _progress(job_id, "a1", 8, 10, 3.0))
    apply(_at(ev.retried(job_id, job_id + "a1", 10, 0.1, RuntimeError("x"), None, None), 4.0))
    apply(_start(job_id, "a2", 5.0, retries=1))
    assert row_of(job_id)[1] is None
    apply(_progress(job_id, "a2", 1, 10, 6.0, "again"))
    assert row_of(job_id) == ("processing", 10, 1, 10, "again")
    apply(_progress(job_id, "a1", 9, 10, 3.5, "old"))  # the first attempt's, arriving late
    assert row_of(job_id) == ("processing", 10, 1, 10, "again")


def test_running_progress_lists_running_jobs_of_the_tenant_with_their_progress() -> None:
    from app.services.progress import running_progress

    job_id, tenant = str(uuid.uuid4()), "acme"
    apply(_pub(job_id, 1.0), _start(job_id, "a1", 2.0), _progress(job_id, "a1", 2, 8, 3.0, "two"))
    with session_scope() as session:
        listed = {job.id: job for job in running_progress(session, tenant, queue="default")}
        assert listed[job_id].progress == 25 and listed[job_id].progress_message == "two"
        assert job_id not in {job.id for job in running_progress(session, "someone-else")}
