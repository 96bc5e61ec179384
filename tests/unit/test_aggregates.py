"""Per-minute aggregates: each execution counted once, whatever the replays; percentiles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.db import get_engine, session_scope
from app.kernel import aggregates
from app.kernel.aggregates import WindowStats, bucket_of
from app.kernel.apply import EventApplier
from app.models import JobStatsMinute
from celeriac import events as ev
from tests.unit.test_recording_apply import lifecycle


def _window(queue: str) -> WindowStats:
    with get_engine().connect() as conn:
        return aggregates.window(conn, datetime(1970, 1, 1, tzinfo=UTC), JobStatsMinute.queue == queue)


def test_finished_jobs_are_counted_once_even_when_events_replay(app: Any) -> None:
    queue = f"agg-{uuid.uuid4().hex[:8]}"
    batches = []
    for runtime in (5, 40, 40, 3000):
        events = lifecycle(str(uuid.uuid4()))
        events[0]["q"] = queue
        events[2]["rt"] = runtime
        batches.append(events)
    for events in batches:
        with session_scope() as session:
            EventApplier().apply(session, events)
    for events in batches[:2]:  # replayed: nothing more is counted
        with session_scope() as session:
            EventApplier().apply(session, events)
    stats = _window(queue)
    assert stats.completed == 4 and stats.failed == 0
    assert stats.runtime_count == 4 and stats.runtime_sum_ms == 3085 and stats.runtime_max_ms == 3000
    assert stats.avg_runtime_ms == 771.2
    assert stats.buckets[bucket_of(40)] == 2
    p95 = stats.runtime_percentile(0.95)
    assert p95 is not None and 2500 <= p95 <= 3000
    assert stats.runtime_percentile(0.5) is not None and stats.runtime_percentile(0.5) <= 50


def test_percentile_of_nothing_is_none_and_buckets_are_bounded() -> None:
    empty = WindowStats(0, 0, 0, 0, 0, 0, 0, 0.0, (0,) * aggregates.BUCKETS)
    assert empty.runtime_percentile(0.95) is None and empty.avg_runtime_ms is None
    assert bucket_of(0) == 0 and bucket_of(10) == 0 and bucket_of(11) == 1
    assert bucket_of(10**9) == aggregates.BUCKETS - 1


def _apply(*batches: list[dict[str, Any]]) -> None:
    for events in batches:
        with session_scope() as session:
            EventApplier().apply(session, events)


def test_waits_are_counted_once_from_the_later_of_creation_and_eta(app: Any) -> None:
    queue = f"wait-{uuid.uuid4().hex[:8]}"
    plain = lifecycle(str(uuid.uuid4()))  # published at t0, started at t0 + 1 s
    delayed = lifecycle(str(uuid.uuid4()))
    delayed[0]["eta"] = datetime.fromtimestamp(1_000.8, UTC).isoformat()  # ready 0.8 s after creation
    for events in (plain, delayed):
        for event in events:
            event["q"] = queue
    _apply(plain, delayed, plain, delayed)  # the second pair replays
    stats = _window(queue)
    assert stats.wait_count == 2 and stats.wait_sum_ms == 1000 + 200 and stats.wait_max_ms == 1000
    assert stats.wait_buckets[bucket_of(1000)] == 1 and stats.wait_buckets[bucket_of(200)] == 1
    p95 = stats.wait_percentile(0.95)
    assert p95 is not None and 500 < p95 <= 1000
    assert stats.avg_wait_ms == 600.0


def test_retries_are_counted_once_whichever_batch_closes_the_attempt(app: Any) -> None:
    queue = f"retry-{uuid.uuid4().hex[:8]}"
    job_id = str(uuid.uuid4())
    pub, start, ok = lifecycle(job_id)
    pub["q"] = start["q"] = queue
    retry = ev.retried(job_id, start["ak"], 5, None, ValueError("busy"), None, "Traceback...")
    retry["ts"] = 1_001.5
    republish = dict(pub, r=1, ts=1_001.6, eid="republish")
    start2 = ev.started(
        job_id=job_id,
        attempt_key=job_id[:8] + "a2",
        task="demo.echo",
        worker="w1",
        retries=1,
        queue=queue,
        payload=None,
    )
    start2["ts"] = 1_003.0
    ok = dict(ok, ak=start2["ak"], ts=1_004.0)
    # The re-publish may close the attempt before the retry event arrives; either way one retry.
    _apply([pub, start], [republish], [retry], [start2, ok], [pub, start, republish, retry, start2, ok])
    stats = _window(queue)
    assert stats.retried == 1 and stats.completed == 1
    assert stats.attempts == 2 and stats.retry_rate == 0.5
    assert stats.wait_count == 1 and stats.wait_sum_ms == 1000, "the first start's wait"


def test_jobs_the_web_process_ends_are_counted_once(app: Any, client: Any, auth: Any, unique: str) -> None:
    from app.db import db
    from app.kernel.writer import mark_unqueued

    queue = f"quiet-{unique}"
    headers = auth("operator", f"agg-{unique}")
    ids = [
        client.post(
            "/api/jobs/dispatch", json={"job_class": "demo.echo", "options": {"queue": queue}}, headers=headers
        ).get_json()["id"]
        for _ in range(2)
    ]
    assert client.post(f"/api/jobs/{ids[0]}/cancel", headers=headers).status_code == 200
    mark_unqueued(db.session, ids[1], "could not be queued: broker refused")  # what a publish failure does
    mark_unqueued(db.session, ids[1], "again")  # already ended: nothing more
    # The worker later reports the cancelled job's skip: the row is already final.
    _apply([ev.cancelled(ids[0], reason="cancelled by request", task="demo.echo")])
    stats = _window(queue)
    assert (stats.cancelled, stats.failed, stats.completed) == (1, 1, 0)
    shown = client.get(f"/api/jobs/queue/{queue}/stats", headers=headers).get_json()
    assert shown["failed"] == 1 and shown["pending"] == 0
