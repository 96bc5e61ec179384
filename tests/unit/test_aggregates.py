"""Per-minute aggregates: each execution counted once, whatever the replays; percentiles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from app.db import get_engine, session_scope
from app.models import JobStatsMinute
from app.monitoring import aggregates
from app.monitoring.aggregates import WindowStats, bucket_of
from app.recording.apply import EventApplier
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
