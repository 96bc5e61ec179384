"""Celery's task events as Celeriac's own (attach mode): what a project's unchanged worker
reports becomes the row a user reads, and a retry of it is sent by name or refused."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.errors import Conflict
from app.kernel import attached
from app.kernel.apply import EventApplier
from app.models import JobAttempt, JobExecution
from app.recording.celery_events import error_of, translate

WORKER = "foreign@host"


def celery_event(kind: str, job_id: str, clock: int, **fields: Any) -> dict[str, Any]:
    """An event as `app.events.Receiver` hands it over (worker fields included)."""
    return {
        "type": kind,
        "uuid": job_id,
        "hostname": WORKER,
        "pid": 4242,
        "clock": clock,
        "timestamp": 1_000.0 + clock,
        "utcoffset": 0,
        **fields,
    }


def received(job_id: str, clock: int, args: str = "(2, 3)", kwargs: str = "{}", retries: int = 0) -> dict[str, Any]:
    return celery_event(
        "task-received", job_id, clock, name="proj.add", args=args, kwargs=kwargs, retries=retries,
        root_id=job_id, parent_id=None, eta=None, expires=None,
    )  # fmt: skip


def record(
    events: list[dict[str, Any]], queue: str | None = "proj-q", batches: int = 1
) -> tuple[JobExecution, list[JobAttempt]]:
    """Translate and apply `events`, in `batches` recorder batches (the recorder reads the
    stream in chunks: what crosses a chunk's edge is not put back in order)."""
    translated = [out for event in events for out in translate(event, queue)]
    size = -(-len(translated) // batches)
    for start in range(0, len(translated), size):
        with session_scope() as session:
            EventApplier().apply(session, translated[start : start + size])
    with session_scope() as session:
        row = session.get(JobExecution, events[0]["uuid"])
        assert row is not None
        attempts = list(
            session.scalars(select(JobAttempt).where(JobAttempt.execution_id == row.id).order_by(JobAttempt.number))
        )
        session.expunge_all()
        return row, attempts


def test_a_received_task_becomes_a_pending_row_with_its_arguments_readable() -> None:
    (published,) = translate(received("j1", 1, args="(2, 'x')", kwargs="{'flag': True}"), "proj-q")
    assert published["t"] == "pub" and published["task"] == "proj.add" and published["q"] == "proj-q"
    assert published["pl"] == {"args": [2, "x"], "kwargs": {"flag": True}}
    assert published["c"]["tags"] == [attached.ATTACHED_TAG]
    assert published["root"] is None  # a job that is its own root names none


def test_keyword_only_arguments_are_shown_as_an_object() -> None:
    (published,) = translate(received("j1", 1, args="()", kwargs="{'to': 'a@b.c'}"), "q")
    assert published["pl"] == {"to": "a@b.c"}


@pytest.mark.parametrize(
    "args",
    [
        "('" + "x" * 1100 + "...',)",  # cut by Celery at 1024 characters: still parses, wrongly
        "(datetime.datetime(2026, 1, 1, 0, 0),)",  # not a literal
        "({1, 2},)",  # a set: JSON cannot carry it
        "([[[[...]]]],)",  # nested past Celery's repr depth: an Ellipsis
        "('a\\b',)",  # Celery does not escape backslashes: would read back as a backspace
    ],
)
def test_arguments_that_do_not_read_back_exactly_are_kept_as_celerys_reprs(args: str) -> None:
    (published,) = translate(received("j1", 1, args=args), "q")
    assert published["pl"] == {attached.ARGS_REPR: args, attached.KWARGS_REPR: "{}"}


def test_a_task_sent_event_names_its_own_queue() -> None:
    sent = celery_event("task-sent", "j1", 1, name="proj.add", args="(1,)", kwargs="{}", retries=0, queue="emails",
                        exchange="emails", routing_key="emails")  # fmt: skip
    (published,) = translate(sent, None)
    assert published["q"] == "emails"


def test_without_a_queue_the_row_says_it_is_unknown() -> None:
    (published,) = translate(received("j1", 1), None)
    assert published["q"] == attached.UNKNOWN_QUEUE


def test_the_same_event_received_twice_translates_to_the_same_ids() -> None:
    event = celery_event("task-started", "j1", 7)
    first, second = translate(event, "q"), translate(dict(event), "q")
    assert [e["eid"] for e in first] == [e["eid"] for e in second]
    assert first[0]["t"] == "start" and first[0]["ak"] == second[0]["ak"]
    assert first[1]["t"] == "pub" and first[1]["c"] == {"tags": [attached.ATTACHED_TAG], "mark": True}


def test_an_attempt_key_fits_its_column_whatever_the_hostname() -> None:
    """PostgreSQL refuses a key over 64 characters (SQLite does not check): the start would
    be set aside and the row never show its worker."""
    job_id = str(uuid.uuid4())
    long_host = "celery@" + "worker-" * 30
    started = translate(celery_event("task-started", job_id, 2, hostname=long_host), "proj-q")[0]
    again = translate(celery_event("task-started", job_id, 2, hostname=long_host), "proj-q")[0]
    assert len(started["ak"]) <= 64 and started["ak"] == again["ak"]
    assert started["ak"] != translate(celery_event("task-started", job_id, 3, hostname=long_host), "proj-q")[0]["ak"]

@pytest.mark.parametrize(
    ("text", "message", "kind"),
    [
        ("ValueError('boom')", "ValueError: boom", "ValueError"),
        ("KeyError('a', 2)", "KeyError: a, 2", "KeyError"),
        ("RuntimeError()", "RuntimeError", "RuntimeError"),
        ("NotRegistered('proj.gone')", "NotRegistered: proj.gone", "NotRegistered"),
        ("something odd", "something odd", None),
    ],
)
def test_exception_reprs_read_as_celeriac_shows_failures(text: str, message: str, kind: str | None) -> None:
    assert error_of(text) == (message, kind)


def test_other_events_are_not_translated() -> None:
    assert translate({"type": "worker-heartbeat", "hostname": WORKER}, None) == []
    assert translate({"type": "task-started"}, None) == []


def test_a_success_records_result_and_runtime() -> None:
    job_id = str(uuid.uuid4())
    row, attempts = record(
        [
            received(job_id, 1),
            celery_event("task-started", job_id, 2),
            celery_event("task-succeeded", job_id, 3, result="5", runtime=0.25),
        ]
    )
    assert (row.status, row.result, row.execution_time_ms, row.worker_id) == ("completed", 5, 250, WORKER)
    assert (row.queue, row.payload, row.tags) == ("proj-q", {"args": [2, 3], "kwargs": {}}, ["celery-events"])
    assert [a.status for a in attempts] == ["completed"]


def test_retries_count_attempts_and_the_failure_keeps_its_exception() -> None:
    job_id = str(uuid.uuid4())
    events = []
    for attempt in range(3):
        clock = attempt * 10
        events += [received(job_id, clock + 1, retries=attempt), celery_event("task-started", job_id, clock + 2)]
        outcome = "task-retried" if attempt < 2 else "task-failed"
        events.append(
            celery_event(outcome, job_id, clock + 3, exception="ValueError('boom')", traceback="Traceback...")
        )
    row, attempts = record(events)
    assert (row.status, row.attempts, row.max_attempts) == ("failed", 3, 3)
    assert (row.error_message, row.exception_type, row.exception_trace) == (
        "ValueError: boom",
        "ValueError",
        "Traceback...",
    )
    assert [a.status for a in attempts] == ["retrying", "retrying", "failed"]


def test_a_retry_received_before_the_start_it_follows_adds_no_attempt() -> None:
    """The main process sends task-received, the pool process task-started and -retried: a
    retry's receipt can overtake them, and must not stand for a start never seen."""
    job_id = str(uuid.uuid4())
    boom = {"exception": "ValueError('boom')", "traceback": "Traceback..."}
    events = [
        received(job_id, 1),
        celery_event("task-started", job_id, 2),
        celery_event("task-retried", job_id, 3, **boom),
        received(job_id, 4, retries=1),
        received(job_id, 7, retries=2),  # overtook the second attempt's start and retry
        celery_event("task-started", job_id, 5),
        celery_event("task-retried", job_id, 6, **boom),
        celery_event("task-started", job_id, 8),
        celery_event("task-succeeded", job_id, 9, result="5", runtime=0.01),
    ]
    row, attempts = record(events, batches=len(events))
    assert (row.status, row.attempts, row.result) == ("completed", 3, 5)
    assert [a.status for a in attempts] == ["retrying", "retrying", "completed"]


def test_a_started_job_whose_receipt_was_missed_is_still_marked_attached() -> None:
    job_id = str(uuid.uuid4())
    row, _ = record([celery_event("task-started", job_id, 1)], queue=None)
    assert (row.status, row.queue, row.tags) == ("processing", attached.UNKNOWN_QUEUE, ["celery-events"])
    with session_scope() as session:
        found = session.scalars(select(JobExecution.id).where(JobExecution.id == job_id, attached.not_attached()))
        assert list(found) == []


def test_revoked_and_requeued_rejections() -> None:
    revoked, requeued = str(uuid.uuid4()), str(uuid.uuid4())
    row, _ = record([received(revoked, 1), celery_event("task-revoked", revoked, 2, terminated=True, signum=15)])
    assert (row.status, row.error_message) == ("cancelled", "terminated while running (signal 15)")
    row, _ = record(
        [
            received(requeued, 1),
            celery_event("task-started", requeued, 2),
            celery_event("task-rejected", requeued, 3, requeue=True),
        ]
    )
    assert row.status == "retrying"


def _attached_row(**values: Any) -> JobExecution:
    fields: dict[str, Any] = dict(
        id=str(uuid.uuid4()), job_class="proj.add", queue="proj-q", status="failed", tags=[attached.ATTACHED_TAG],
        payload={"args": [2, 3], "kwargs": {}}, max_attempts=1,
    )  # fmt: skip
    fields.update(values)
    return JobExecution(**fields)


def test_a_retry_sends_the_recorded_arguments_and_refuses_what_it_cannot_read_back() -> None:
    assert attached.resend_payload(_attached_row(), None) == {"args": [2, 3], "kwargs": {}}
    assert attached.resend_payload(_attached_row(payload={attached.ARGS_REPR: "('x...',)"}), {"args": [1]}) == {
        "args": [1]
    }
    with pytest.raises(Conflict, match="edited payload"):
        attached.resend_payload(
            _attached_row(payload={attached.ARGS_REPR: "('x...',)", attached.KWARGS_REPR: "{}"}), None
        )
    with pytest.raises(Conflict, match="queue it came from is not known"):
        attached.resend_payload(_attached_row(queue=attached.UNKNOWN_QUEUE), None)


def test_in_attach_mode_only_messages_of_queues_with_heartbeats_can_be_orphans() -> None:
    import dataclasses

    from app.config import get_settings
    from app.config_attach import AttachConfig
    from app.recording.broker_view import Unacked
    from app.recording.suspects import own_unacked

    entries = [
        Unacked("1", "a", 0.0, "celeriac"),
        Unacked("2", "b", 0.0, "instrumented"),
        Unacked("3", "c", 0.0, "events"),
    ]
    plain = get_settings()
    assert own_unacked(entries, plain, set()) == entries
    attach = dataclasses.replace(plain, attach=AttachConfig(enabled=True))
    assert [e.job_id for e in own_unacked(entries, attach, {"instrumented"})] == ["a", "b"]
