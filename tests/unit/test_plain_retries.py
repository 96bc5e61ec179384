"""Plain Celery tasks' attempt limits and Celery canvas relations, as the recorder folds them:
the limit follows `max_retries` / `autoretry_for` / `self.retry`, a chord callback's parent
is its header, and a group's id is kept for its members only."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from celery import Celery

from app.db import session_scope
from app.kernel.apply import EventApplier
from app.kernel.canvas_relations import UNLIMITED_ATTEMPTS, attempts_limit
from app.models import JobExecution
from celeriac import canvas
from celeriac import events as ev
from celeriac.retry_limits import declared_max_retries, retries_spent

_clock = itertools.count(1_000)

# --- what the worker reads off a task -----------------------------------------------

#: An app of its own, its tasks not shared: no other app of the test process gets them.
celery = Celery("plain-retries", broker="memory://", set_as_current=False)


class Flaky(Exception):
    pass


@celery.task(shared=False, autoretry_for=(Flaky,), max_retries=3)
def autoretried() -> None:
    raise Flaky("always")


@celery.task(shared=False, autoretry_for=(Flaky,), retry_kwargs={"max_retries": 7})
def autoretried_by_kwargs() -> None:
    raise Flaky("always")


@celery.task(shared=False, bind=True, max_retries=5)
def retried_by_hand(self: Any, max_retries: int | None = None) -> None:
    try:
        raise Flaky("always")
    except Flaky as exc:
        raise self.retry(exc=exc, max_retries=max_retries) from exc


@celery.task(shared=False, bind=True, max_retries=None)
def retried_forever(self: Any) -> None:
    raise self.retry()


@celery.task(shared=False)
def fails_plainly() -> None:
    raise Flaky("no retry asked")


def test_the_limit_is_the_tasks_max_retries_or_its_autoretry_kwargs() -> None:
    assert declared_max_retries(autoretried) == (True, 3)
    assert declared_max_retries(autoretried_by_kwargs) == (True, 7)
    assert declared_max_retries(retried_by_hand) == (True, 5)
    assert declared_max_retries(retried_forever) == (True, None)
    assert declared_max_retries(fails_plainly) == (True, 3)  # Celery's default


def test_a_celeriac_job_reports_no_limit_of_its_own() -> None:
    class JobTask:
        celeriac_job = object()  # app.jobs marks a Job's task so; its header says the limit
        max_retries = 3

    assert declared_max_retries(JobTask()) == (False, None)
    assert declared_max_retries(None) == (False, None)


def test_attempts_are_max_retries_plus_one_and_none_is_unlimited() -> None:
    assert attempts_limit(3) == 4
    assert attempts_limit(0) == 1
    assert attempts_limit(None) == UNLIMITED_ATTEMPTS == 0
    assert attempts_limit(-1) is None and attempts_limit("3") is None and attempts_limit(True) is None


@pytest.mark.parametrize(
    ("task", "retries", "kwargs"),
    [
        (autoretried, 3, {}),  # autoretry_for past max_retries re-raises the task's error
        (retried_by_hand, 5, {}),  # self.retry(exc=...) past the limit
        (retried_by_hand, 1, {"max_retries": 1}),  # a per-call limit
    ],
)
def test_a_failure_past_the_retry_limit_is_told_from_an_ordinary_one(
    task: Any, retries: int, kwargs: dict[str, Any]
) -> None:
    result = task.apply(kwargs=kwargs, retries=retries)
    assert result.failed() and isinstance(result.result, Flaky)
    assert retries_spent(result.result)
    plain = fails_plainly.apply()
    assert plain.failed() and not retries_spent(plain.result)
    assert not retries_spent(None)


# --- what the recorder makes of it ---------------------------------------------------


def published(job_id: str, **extra: Any) -> dict[str, Any]:
    event = ev.published(
        job_id=job_id,
        task="tests.plain_autoretry",
        queue="default",
        priority=5,
        payload={"args": [], "kwargs": {}},
        retries=int(extra.pop("retries", 0)),
        eta=None,
        expires=None,
        parent_id=extra.pop("parent", None),
        root_id=extra.pop("root", None),
        celeriac=extra.pop("celeriac", {}),
        group_id=extra.pop("grp", None),
    )
    event.update(extra, ts=float(next(_clock)))
    return event


def started(job_id: str, retries: int = 0, **extra: Any) -> dict[str, Any]:
    event = ev.started(
        job_id=job_id,
        attempt_key=uuid.uuid4().hex[:12],
        task="tests.plain_autoretry",
        worker="w1",
        retries=retries,
        queue="default",
        payload=None,
        group_id=extra.pop("grp", None),
    )
    event.update(extra, ts=float(next(_clock)))
    return event


def retried(job_id: str, start: dict[str, Any]) -> dict[str, Any]:
    event = ev.retried(job_id, start["ak"], 5, None, Flaky("again"), None, None)
    event["ts"] = float(next(_clock))
    return event


def failed(job_id: str, start: dict[str, Any], retries: int, spent: bool) -> dict[str, Any]:
    event = ev.failed(job_id, start["ak"], 5, None, Flaky("last"), None)
    event.update(r=retries, ts=float(next(_clock)))
    if spent:
        event["spent"] = True
    return event


def apply(events: list[dict[str, Any]]) -> None:
    with session_scope() as session:
        EventApplier().apply(session, events)


def row_of(job_id: str) -> JobExecution:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


def run_with_retries(job_id: str, retries: int, mr: Any, spent: bool) -> list[dict[str, Any]]:
    """The events of a plain task sent with `.delay()` that retried `retries` times, then failed."""
    events = [published(job_id, mr=mr)]
    for attempt in range(retries + 1):
        start = started(job_id, retries=attempt, mr=mr)
        events.append(start)
        if attempt < retries:
            events += [retried(job_id, start), published(job_id, retries=attempt + 1, parent=job_id, mr=mr)]
    events.append(failed(job_id, start, retries, spent))
    return events


def test_autoretry_with_max_retries_3_shows_4_of_4_attempts(app: Any) -> None:
    job_id = str(uuid.uuid4())
    apply(run_with_retries(job_id, retries=3, mr=3, spent=True))
    row = row_of(job_id)
    assert (row.status, row.attempts, row.max_attempts) == ("failed", 4, 4)


def test_a_per_call_limit_that_ended_the_retries_becomes_the_limit_shown(app: Any) -> None:
    job_id = str(uuid.uuid4())
    apply(run_with_retries(job_id, retries=1, mr=5, spent=True))  # self.retry(max_retries=1)
    assert (row_of(job_id).attempts, row_of(job_id).max_attempts) == (2, 2)


def test_a_failure_that_did_not_spend_the_retries_keeps_the_limit(app: Any) -> None:
    job_id = str(uuid.uuid4())
    apply(run_with_retries(job_id, retries=1, mr=5, spent=False))
    assert (row_of(job_id).attempts, row_of(job_id).max_attempts) == (2, 6)


def test_max_retries_none_is_stored_as_unlimited(app: Any) -> None:
    job_id = str(uuid.uuid4())
    apply([published(job_id, mr=None), started(job_id, mr=None)])
    assert row_of(job_id).max_attempts == UNLIMITED_ATTEMPTS


def test_a_plain_tasks_own_limit_wins_over_the_dispatch_header(app: Any) -> None:
    """Celery retries a plain task by its max_retries, whatever a dispatch option said."""
    job_id = str(uuid.uuid4())
    apply([published(job_id, celeriac={"tenant": "default", "max_attempts": 9}, mr=2)])
    assert row_of(job_id).max_attempts == 3


def test_a_celeriac_job_keeps_its_header_limit(app: Any) -> None:
    job_id = str(uuid.uuid4())
    start = started(job_id)  # a Job's events carry no `mr`
    apply([published(job_id, celeriac={"tenant": "default", "max_attempts": 5}), start])
    assert row_of(job_id).max_attempts == 5


# --- canvas relations ----------------------------------------------------------------


def test_a_chord_callbacks_parent_and_root_are_its_header_whatever_the_order(app: Any) -> None:
    header, member, callback = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    # Celery names the header task that finished last as parent and (chord sent alone) root;
    # the callback's start may be applied before its publish.
    start = started(callback, parent=member, root=member)
    publish = published(callback, parent=member, root=member, chord=header)
    apply([start])
    apply([publish])
    row = row_of(callback)
    assert (row.parent_id, row.root_id, row.group_id) == (header, header, None)


def test_a_chord_callback_inside_a_workflow_keeps_the_workflows_root(app: Any) -> None:
    header, member, first, callback = (str(uuid.uuid4()) for _ in range(4))
    apply([published(callback, parent=member, root=first, chord=header)])
    assert (row_of(callback).parent_id, row_of(callback).root_id) == (header, first)


def test_a_retry_from_the_callbacks_own_run_keeps_its_relations(app: Any) -> None:
    header, member, callback = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    apply(
        [
            published(callback, parent=member, root=member, chord=header),
            published(callback, retries=1, parent=callback, root=member),
        ]
    )
    assert (row_of(callback).parent_id, row_of(callback).root_id) == (header, header)


def test_a_chain_steps_parent_and_root_come_from_celerys_headers(app: Any) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    apply([published(second, parent=first, root=first)])
    assert (row_of(second).parent_id, row_of(second).root_id) == (first, first)


def test_a_start_fills_in_relations_no_publish_told(app: Any) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    apply([started(second, parent=first, root=first)])
    assert (row_of(second).parent_id, row_of(second).root_id) == (first, first)


def test_only_group_members_carry_the_group() -> None:
    group = str(uuid.uuid4())
    assert canvas.member_group_of_headers({"group": group, "group_index": 0}) == group
    # A chord callback (or a callback chain's last step) has the id but no place in it.
    assert canvas.member_group_of_headers({"group": group, "group_index": None}) is None
    assert canvas.member_group_of_headers({"group": group}) == group  # a producer before group_index
    assert canvas.member_group_of_headers({"group": None, "group_index": None}) is None


def test_where_a_chord_body_starts() -> None:
    def sig(task_id: str, task: str = "demo.add") -> dict[str, Any]:
        return {"task": task, "options": {"task_id": task_id}}

    assert list(canvas.entry_ids(sig("a"))) == ["a"]
    chain = {"task": "celery.chain", "kwargs": {"tasks": [sig("a"), sig("b")]}, "options": {"task_id": "b"}}
    assert list(canvas.entry_ids(chain)) == ["a"]
    group = {"task": "celery.group", "kwargs": {"tasks": [sig("a"), sig("b")]}}
    assert list(canvas.entry_ids(group)) == ["a", "b"]
    assert list(canvas.entry_ids({"task": "celery.chain", "kwargs": {"tasks": []}})) == []
