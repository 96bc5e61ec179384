"""Celery group membership recorded from events: the publish's `group` header, or the worker's
request when the producer had no Celeriac signals; a replay or a later event never clears it."""

from __future__ import annotations

import uuid
from typing import Any

from app.db import session_scope
from app.kernel.apply import EventApplier
from app.models import JobExecution
from celeriac import events as ev


def apply(events: list[dict[str, Any]]) -> None:
    with session_scope() as session:
        EventApplier().apply(session, events)


def group_of(job_id: str) -> str | None:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        return row.group_id


def published(job_id: str, group_id: str | None) -> dict[str, Any]:
    return ev.published(
        job_id=job_id,
        task="demo.add",
        queue="default",
        priority=5,
        payload={"args": [1, 2], "kwargs": {}},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={},
        group_id=group_id,
    )


def started(job_id: str, group_id: str | None) -> dict[str, Any]:
    return ev.started(
        job_id=job_id,
        attempt_key=uuid.uuid4().hex[:12],
        task="demo.add",
        worker="w1",
        retries=0,
        queue="default",
        payload=None,
        group_id=group_id,
    )


def test_the_publish_records_the_group(app: Any) -> None:
    job_id, group_id = str(uuid.uuid4()), str(uuid.uuid4())
    apply([published(job_id, group_id), started(job_id, None)])
    assert group_of(job_id) == group_id


def test_a_start_without_a_publish_records_the_group(app: Any) -> None:
    job_id, group_id = str(uuid.uuid4()), str(uuid.uuid4())
    apply([started(job_id, group_id)])
    assert group_of(job_id) == group_id
    apply([published(job_id, None)])  # a late publish without one leaves it
    assert group_of(job_id) == group_id


def test_a_job_sent_alone_has_no_group_and_no_grp_key(app: Any) -> None:
    job_id = str(uuid.uuid4())
    event = published(job_id, None)
    assert "grp" not in event
    apply([event])
    assert group_of(job_id) is None
