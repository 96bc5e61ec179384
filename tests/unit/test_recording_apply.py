"""The recorder's folding of events into rows: idempotent, forward-only, order-proof."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app import redis_keys
from app.db import session_scope
from app.kernel.apply import EventApplier
from app.models import JobAttempt, JobExecution
from celeriac import events as ev
from celeriac.buffer import encode_event


def lifecycle(job_id: str, t0: float = 1_000.0) -> list[dict[str, Any]]:
    pub = ev.published(
        job_id=job_id,
        task="demo.echo",
        queue="emails",
        priority=7,
        payload={"value": 1},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"tenant": "acme", "max_attempts": 3, "tags": ["x"]},
    )
    start = ev.started(
        job_id=job_id,
        attempt_key=job_id[:8] + "a1",
        task="demo.echo",
        worker="w1",
        retries=0,
        queue="emails",
        payload=None,
    )
    ok = ev.succeeded(job_id, job_id[:8] + "a1", 12, 0.5, 1)
    for offset, event in enumerate((pub, start, ok)):
        event["ts"] = t0 + offset
    return [pub, start, ok]


def apply(events: list[dict[str, Any]]) -> None:
    with session_scope() as session:
        EventApplier().apply(session, events)


def load(job_id: str) -> tuple[JobExecution, list[JobAttempt]]:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        attempts = list(session.scalars(select(JobAttempt).where(JobAttempt.execution_id == job_id)))
        return row, attempts


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_any_arrival_order_gives_the_same_row(order: tuple[int, ...]) -> None:
    job_id = str(uuid.uuid4())
    events = lifecycle(job_id)
    for index in order:  # one batch per event: the worst case for ordering
        apply([events[index]])
    row, attempts = load(job_id)
    assert (row.status, row.tenant_id, row.queue, row.priority, row.result) == (
        "completed",
        "acme",
        "emails",
        7,
        1,
    )
    assert row.max_attempts == 3 and row.tags == ["x"] and row.attempts == 1
    assert row.execution_time_ms == 12 and row.worker_id == "w1"
    assert [a.status for a in attempts] == ["completed"]


def test_replaying_events_changes_nothing() -> None:
    job_id = str(uuid.uuid4())
    events = lifecycle(job_id)
    apply(events)
    first, _ = load(job_id)
    apply(events)
    apply(list(reversed(events)))
    again, attempts = load(job_id)
    assert again.attempts == first.attempts == 1 and len(attempts) == 1
    assert again.status == "completed" and again.status_ts == first.status_ts


def test_terminal_status_is_never_replaced() -> None:
    job_id = str(uuid.uuid4())
    events = lifecycle(job_id)
    cancel = ev.cancelled(job_id, reason="cancelled by request")
    cancel["ts"] = 999.0
    apply([cancel])
    apply(events)  # later events of a job that was already cancelled
    row, _ = load(job_id)
    assert row.status == "cancelled" and row.error_message == "cancelled by request"


def test_failure_then_retry_publish_and_second_attempt() -> None:
    job_id = str(uuid.uuid4())
    pub, start, _ok = lifecycle(job_id)
    retry = ev.retried(job_id, job_id[:8] + "a1", 5, 0.1, ValueError("boom"), None, "Traceback...")
    retry["ts"] = 1_002.0
    republish = dict(pub, r=1, ts=1_001.9, eid="x")
    start2 = ev.started(
        job_id=job_id,
        attempt_key=job_id[:8] + "a2",
        task="demo.echo",
        worker="w2",
        retries=1,
        queue="emails",
        payload=None,
    )
    start2["ts"] = 1_003.0
    fail = ev.failed(job_id, job_id[:8] + "a2", 7, 0.2, RuntimeError("final"), "Traceback (most recent call last)")
    fail["ts"] = 1_004.0
    apply([pub, start, republish, retry, start2, fail])
    row, attempts = load(job_id)
    assert row.status == "failed" and row.attempts == 2
    assert row.error_message == "RuntimeError: final" and row.exception_type == "RuntimeError"
    by_number = sorted(attempts, key=lambda a: a.number)
    assert [a.status for a in by_number] == ["retrying", "failed"]
    assert by_number[0].error_message == "ValueError: boom"


def test_rejected_message_becomes_failed_row() -> None:
    event = ev.rejected(None, None, "message rejected: not a task message", None)
    apply([event])
    row, _ = load(event["id"])
    assert row.status == "failed" and row.exception_type == "Rejected" and row.job_class == "unknown"


def test_encrypted_jobs_never_store_payload_or_result_in_clear() -> None:
    """The row keeps the sealed envelope and the worker's sealed result, never the clear values."""
    from cryptography.fernet import Fernet

    from app.crypto import seal, seal_payload, unseal

    key = Fernet.generate_key().decode()
    job_id = str(uuid.uuid4())
    pub, start, _ = lifecycle(job_id)
    envelope = seal_payload({"card": "4111"}, keys=[key])
    sealed_result = seal({"charged": "4111"}, keys=[key])
    pub = ev.published(
        job_id=job_id,
        task="demo.echo",
        queue="default",
        priority=5,
        payload=envelope,
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"encrypted": True},
    )
    pub["ts"] = 999.0
    ok = ev.succeeded(job_id, job_id[:8] + "a1", 12, 0.5, ev.bounded_result(sealed_result, 10_000))
    ok["ts"] = 1_002.0
    apply([pub, start, ok])
    row, _ = load(job_id)
    assert row.encrypted and row.payload == envelope and row.result == sealed_result
    assert unseal(row.result, keys=[key]) == {"charged": "4111"}
    assert "4111" not in repr(row.payload) + repr(row.result)


def test_encrypted_pub_event_never_carries_a_clear_payload() -> None:
    """A producer that marks a job encrypted but sends it in clear gets it redacted."""
    event = ev.published(
        job_id="x",
        task="demo.echo",
        queue="default",
        priority=5,
        payload={"card": "4111"},
        retries=0,
        eta=None,
        expires=None,
        parent_id=None,
        root_id=None,
        celeriac={"encrypted": True},
    )
    assert event["pl"] == "[encrypted]"


def test_bounded_result_truncates_large_values() -> None:
    assert ev.bounded_result({"a": 1}, 100) == {"a": 1}
    big = ev.bounded_result("x" * 500, 100)
    assert big["truncated"] is True and len(big["preview"]) == 100
    assert ev.bounded_result(object(), 1000).startswith("<object")


def test_payload_from_body_handles_positional_and_odd_bodies() -> None:
    assert ev.payload_from_body(([1], {"a": 2}, {})) == {"args": [1], "kwargs": {"a": 2}}
    assert ev.payload_from_body(([], {"a": 2}, {})) == {"a": 2}
    assert ev.payload_from_body("nonsense") is None


def test_worker_clock_behind_the_web_clock_still_completes_the_row() -> None:
    """The API writes the pending row with its clock; a worker running 2 s behind must win."""
    import time

    from app.models import ExecutionStatus

    job_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            JobExecution(
                id=job_id,
                tenant_id="acme",
                job_class="demo.echo",
                queue="default",
                status=ExecutionStatus.PENDING.value,
                status_ts=0.0,
                max_attempts=1,
            )
        )
    now = time.time()
    pub, start, ok = lifecycle(job_id, t0=now)
    start["ts"], ok["ts"] = now - 2.0, now - 1.9
    apply([ok])
    apply([pub, start])
    row, attempts = load(job_id)
    assert row.status == "completed" and row.result == 1 and row.attempts == 1
    assert [a.status for a in attempts] == ["completed"]


def test_recorder_sets_aside_an_event_it_cannot_apply(redis_client: Any) -> None:
    from app.config import get_settings
    from app.recorder import Recorder

    recorder = Recorder(get_settings(), redis_client, name="unit-recorder")
    good_id = str(uuid.uuid4())
    good = lifecycle(good_id)
    bad = {"t": "ok", "id": str(uuid.uuid4()), "eid": "x"}  # no "ts": the applier cannot use it
    entries = [(f"{n}-0".encode(), {b"e": encode_event(e).encode()}) for n, e in enumerate([*good, bad], 1)]
    dead_before = redis_client.xlen(redis_keys.DEAD_EVENTS_STREAM)
    assert recorder.process(entries) == 4
    assert load(good_id)[0].status == "completed"
    assert redis_client.xlen(redis_keys.DEAD_EVENTS_STREAM) == dead_before + 1


def test_updates_leave_columns_the_events_do_not_touch() -> None:
    """Only changed columns are written: what dispatch stored (dependencies) survives."""
    job_id = str(uuid.uuid4())
    pub, start, ok = lifecycle(job_id)
    apply([pub])
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        row.depends_on = ["other-job"]
    apply([start, ok, {"t": "no-such-kind", "id": job_id, "ts": 1_005.0}])
    row, attempts = load(job_id)
    assert row.depends_on == ["other-job"] and row.status == "completed"
    assert row.updated_at.timestamp() == pytest.approx(ok["ts"])
    assert [(a.number, a.status, a.worker_id) for a in attempts] == [(1, "completed", "w1")]


def test_a_none_result_is_stored_as_json_null_like_the_orm_did() -> None:
    job_id = str(uuid.uuid4())
    pub, start, ok = lifecycle(job_id)
    ok["res"] = None
    apply([pub, start, ok])
    with session_scope() as session:
        stored = session.execute(
            select(JobExecution.result.is_(None), JobExecution.tags).where(JobExecution.id == job_id)
        ).one()
    assert stored == (False, ["x"])  # JSON null, not SQL NULL


def test_flushed_entries_hold_many_events_and_are_acked_only_when_all_are_written(redis_client: Any) -> None:
    """A buffer flush is one stream entry; junk inside it is dropped, good events kept."""
    from app.config import get_settings
    from app.recorder import Recorder
    from app.recording.stream import decode_entries
    from celeriac.buffer import EventBuffer

    stream = f"celeriac:test-events:{uuid.uuid4().hex}"
    buffer = EventBuffer(lambda: redis_client, stream=stream)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    for event in [*lifecycle(first), *lifecycle(second)]:
        buffer.emit(event)
    assert buffer.flush() == 6
    entries = redis_client.xrange(stream)
    assert len(entries) == 1, "one entry per flush"
    events, junk = decode_entries(entries)
    assert [e["id"] for e in events] == [first] * 3 + [second] * 3 and junk == []
    mixed = [(b"9-0", {b"b": b'[{"t": "ok", "id": "x", "ts": 1}, 42, "junk"]'}), (b"9-1", {b"b": b"not json"})]
    events, junk = decode_entries(mixed)
    assert [e["id"] for e in events] == ["x"] and junk == [b"9-1"]
    redis_client.delete(stream)

    recorder = Recorder(get_settings(), redis_client, name="unit-recorder")
    bad = {"t": "ok", "id": str(uuid.uuid4()), "eid": "y"}  # refused: forces the one-by-one path
    third = str(uuid.uuid4())
    entry = (b"10-0", {b"b": ("[" + ",".join(encode_event(e) for e in [bad, *lifecycle(third)]) + "]").encode()})
    dead_before = redis_client.xlen(redis_keys.DEAD_EVENTS_STREAM)
    assert recorder.process([entry]) == 4
    assert load(third)[0].status == "completed"
    assert redis_client.xlen(redis_keys.DEAD_EVENTS_STREAM) == dead_before + 1


def test_a_job_re_published_from_its_own_run_is_not_its_own_parent() -> None:
    job_id, parent = str(uuid.uuid4()), str(uuid.uuid4())
    pub, start, ok = lifecycle(job_id)
    pub["parent"] = parent
    again = dict(pub, parent=job_id, ts=pub["ts"] + 0.5, eid="again", c={**pub["c"], "throttled": True})
    apply([pub, again, start, ok])
    row, attempts = load(job_id)
    assert row.parent_id == parent and row.status == "completed" and len(attempts) == 1


def test_a_lost_worker_closes_the_attempt_as_lost_and_the_job_waits_again_from_that_moment() -> None:
    job_id = str(uuid.uuid4())
    pub, start, ok = lifecycle(job_id)
    lost = ev.lost(job_id, reason="WorkerLostError: signal 9", losses=1)
    lost["ts"] = 1_005.0
    second = ev.started(
        job_id=job_id, attempt_key="second", task="demo.echo", worker="w2", retries=0, queue="emails", payload=None
    )
    second["ts"] = 1_006.0
    ok.update(ak="second", ts=1_007.0)
    apply([pub, start, lost])
    row, attempts = load(job_id)
    assert row.status == "retrying" and row.published_at is not None and row.published_at.timestamp() == 1_005.0
    assert [a.status for a in attempts] == ["lost"]
    assert "Worker lost (WorkerLostError: signal 9)" in row.notes[0]["text"]
    apply([second, ok, lost])  # a replay of the loss changes nothing more
    row, attempts = load(job_id)
    assert row.status == "completed" and row.attempts == 2
    assert sorted(a.status for a in attempts) == ["completed", "lost"]
    assert len(row.notes) == 1


def test_a_recovered_outcome_and_a_republish_say_so_on_the_timeline() -> None:
    recovered_id, republished_id = str(uuid.uuid4()), str(uuid.uuid4())
    pub = lifecycle(recovered_id)[0]
    outcome = ev.recovered(ev.succeeded(recovered_id, None, None, None, "done"), "the result backend")
    outcome["ts"] = 2_000.0
    again_pub = lifecycle(republished_id)[0]
    again = ev.republished(republished_id, reason="its message is in no queue", ts=2_000.0)
    apply([pub, outcome, again_pub, again])
    row, _ = load(recovered_id)
    assert row.status == "completed" and row.result == "done"
    assert row.notes[0]["text"].startswith("Outcome recovered from the result backend")
    row, _ = load(republished_id)
    assert row.status == "pending" and row.published_at.timestamp() == 2_000.0
    assert row.notes[0]["text"] == "Published again by the reconciler: its message is in no queue"


def test_a_job_that_could_not_be_queued_fails_without_an_invented_attempt() -> None:
    from app.kernel.writer import not_queued_event

    job_id = str(uuid.uuid4())
    pub = lifecycle(job_id)[0]
    apply([pub, {**not_queued_event(job_id, "could not be queued: broker down"), "ts": 1_001.0}])
    row, attempts = load(job_id)
    assert row.status == "failed" and row.exception_type == "NotQueued" and attempts == []
