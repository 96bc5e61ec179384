"""A real beat fires a schedule with dispatch options; a real worker runs it from that queue.

Issue 13, item 8: the options a schedule carries are used for every fire. The fired job's
message is seen in the broker list of the option's queue at the option's priority, with its
max_attempts and tags in the Celeriac header, before a worker that consumes only that queue
runs it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.db import session_scope
from app.models import JobExecution
from celeriac.priority import to_broker_priority
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess
from tests.integration.test_schedules_beat import _schedule, beats, clean_schedules  # noqa: F401  (fixtures)

pytestmark = pytest.mark.redis


def _fired(schedule_id: str) -> list[JobExecution]:
    with session_scope() as session:
        query = select(JobExecution).where(JobExecution.schedule_id == schedule_id).order_by(JobExecution.created_at)
        return list(session.scalars(query))


def test_fires_land_on_the_options_queue_with_its_priority_and_attempts(
    beats: Any, recorder: Any, redis_client: Any, tmp_path: Path  # noqa: F811  (the imported fixture)
) -> None:
    queue = f"sched-opts-{uuid.uuid4().hex[:8]}"
    options = {"queue": queue, "priority": 8, "max_attempts": 3, "timeout": 30, "tags": ["nightly"]}
    # Given a beat and a schedule every 2 seconds with options, and no worker on its queue yet
    beats()
    schedule_id = _schedule("*/2 * * * * *", options=options)
    # When beat fires it, the job waits in the option's queue at the option's priority
    broker_list = f"{queue}:{to_broker_priority(8)}"  # kombu's list for that priority step
    raw = wait_for(lambda: redis_client.lindex(broker_list, -1), timeout=30, what="a fired message in the queue")
    message = json.loads(raw)
    celeriac = message["headers"]["celeriac"]
    assert celeriac["max_attempts"] == 3 and "nightly" in celeriac["tags"]
    assert message["properties"]["priority"] == to_broker_priority(8)
    assert message["headers"]["timelimit"][1] == 30  # soft limit: the timeout
    assert not redis_client.exists(queue)  # nothing at the default priority step
    first = wait_for(lambda: _fired(schedule_id), what="the fired job's row")[0]
    assert (first.queue, first.priority, first.max_attempts) == (queue, 8, 3)
    # Then a worker consuming only that queue runs it
    worker = WorkerProcess(tmp_path / "worker.log", queues=queue, hostname=f"{queue}@%h")
    try:
        done = wait_for(
            lambda: [r for r in _fired(schedule_id) if r.status == "completed"], timeout=40, what="a completed fire"
        )
    finally:
        worker.stop()
    assert done[0].worker_id and queue in done[0].worker_id
    assert {"nightly"} <= set(done[0].tags or [])
