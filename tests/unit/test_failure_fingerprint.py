"""Failure fingerprints and the recorder's failure groups (F4)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.kernel.apply import EventApplier
from app.kernel.fingerprint import fingerprint, normalise_message, top_frames
from app.models import FailureGroup, JobExecution
from celeriac import events as ev

TRACE = """Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/celery/app/trace.py", line 453, in trace_task
    R = retval = fun(*args, **kwargs)
  File "/srv/app/app/jobs/base.py", line 120, in run
    return self.handle(**payload)
  File "/srv/app/tasks/orders.py", line {line}, in handle
    raise RuntimeError(message)
RuntimeError: order 17 failed
"""


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("order 17 failed", "order <n> failed"),
        ("timeout after 3.5s (attempt -2)", "timeout after <n>s (attempt -<n>)"),
        ("user 'bob' and \"alice\" unknown", "user <str> and <str> unknown"),
        ("job 6f1c2d3e-1111-2222-3333-444455556666 lost", "job <uuid> lost"),
        ("at 0xdeadbeef, sha a1b2c3d4e5f60718", "at <hex>, sha <hex>"),
        ("host-12 at 12:30:01 on 2024-01-02", "host-<n> at <n> on <n>-<n>-<n>"),
        ("  spaced\n  out  ", "spaced out"),
        ("utf8 and py3 stay", "utf8 and py3 stay"),
        (None, ""),
    ],
)
def test_normalise_message_replaces_variable_parts(message: str | None, expected: str) -> None:
    assert normalise_message(message) == expected


def test_top_frames_are_innermost_first_without_line_numbers_or_install_paths() -> None:
    assert top_frames(TRACE.format(line=10)) == [
        "tasks/orders.py:handle",
        "jobs/base.py:run",
        "celery/app/trace.py:trace_task",
    ]
    assert top_frames(None) == [] and top_frames("no frames here") == []


def test_top_frames_use_the_last_exception_of_a_chained_traceback() -> None:
    chained = (
        TRACE.format(line=1)
        + "\nDuring handling of the above exception...\n\n"
        + TRACE.replace("in handle", "in other").format(line=2)
    )
    assert top_frames(chained)[0] == "tasks/orders.py:other"


def test_same_cause_same_fingerprint_and_other_causes_differ() -> None:
    one = fingerprint("RuntimeError", "order 17 failed", TRACE.format(line=10))
    two = fingerprint("RuntimeError", "order 9001 failed", TRACE.format(line=99))
    assert one.key == two.key and one.message == "order <n> failed"
    assert fingerprint("ValueError", "order 17 failed", TRACE.format(line=10)).key != one.key
    assert fingerprint("RuntimeError", "customer 17 failed", TRACE.format(line=10)).key != one.key
    assert fingerprint("RuntimeError", "order 17 failed", TRACE.replace("in handle", "in x")).key != one.key


def _failure(job_id: str, tenant: str, message: str, ts: float, job_class: str = "orders.sync") -> list[dict[str, Any]]:
    pub = ev.published(
        job_id=job_id,
        task=job_class,
        queue="default",
        priority=5,
        payload={},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"tenant": tenant},
    )
    fail = ev.failed(job_id, None, 3, 0.1, RuntimeError(message), TRACE.format(line=int(ts)))
    pub["ts"], fail["ts"] = ts, ts + 1
    return [pub, fail]


def test_recorder_groups_failures_once_even_when_events_are_replayed() -> None:
    tenant = "fp-" + uuid.uuid4().hex[:8]
    ids = [str(uuid.uuid4()) for _ in range(3)]
    events = _failure(ids[0], tenant, "order 1 failed", 1_000.0) + _failure(ids[1], tenant, "order 2 failed", 1_010.0)
    events += _failure(ids[2], tenant, "order 3 failed", 1_020.0, job_class="orders.refund")
    applier = EventApplier()
    with session_scope() as session:
        applier.apply(session, events[:4])
    assert [f.group_count for f in applier.failures] == [2, 2]  # each group's count after the batch
    for _ in range(2):  # the last job, then everything again: replays count nothing
        with session_scope() as session:
            applier.apply(session, events)
    assert applier.failures == []
    with session_scope() as session:
        groups = list(session.scalars(select(FailureGroup).where(FailureGroup.tenant_id == tenant)))
        assert len(groups) == 1
        group = groups[0]
        assert group.count == 3 and group.message == "RuntimeError: order <n> failed"
        assert group.job_classes == ["orders.sync", "orders.refund"]
        assert group.sample_job_ids == [ids[2], ids[1], ids[0]]
        assert group.first_seen_at.timestamp() == 1_001.0 and group.last_seen_at.timestamp() == 1_021.0
        assert group.last_message == "RuntimeError: order 3 failed"
        rows = session.scalars(select(JobExecution.fingerprint).where(JobExecution.id.in_(ids))).all()
        assert set(rows) == {group.fingerprint}


def test_completed_jobs_get_no_fingerprint_and_no_group() -> None:
    job_id = str(uuid.uuid4())
    pub = _failure(job_id, "fp-ok", "x", 1_000.0)[0]
    ok = ev.succeeded(job_id, None, 1, 0.1, 1)
    ok["ts"] = 1_001.0
    applier = EventApplier()
    with session_scope() as session:
        applier.apply(session, [pub, ok])
        assert applier.failures == []
        row = session.get(JobExecution, job_id)
        assert row is not None and row.fingerprint is None
