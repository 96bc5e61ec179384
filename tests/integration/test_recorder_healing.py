"""The recorder heals after Redis lost its data (R1): it recreates its stream and group."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import redis

from app import redis_keys
from app.config import get_settings
from app.db import session_scope
from app.embedded_redis import start_embedded
from app.models import JobExecution
from app.recorder import Recorder
from celeriac.buffer import encode_event
from tests.unit.test_recording_apply import lifecycle

pytestmark = pytest.mark.redis


def test_recorder_recreates_its_group_after_redis_restarted_without_data_and_records_again(tmp_path: Path) -> None:
    server = start_embedded(tmp_path / "redis", persist=False)
    client = redis.Redis.from_url(server.url)
    recorder = Recorder(dataclasses.replace(get_settings(), redis_url=server.url), client, name="healing")
    try:
        recorder.ensure_group()
        before, after = str(uuid.uuid4()), str(uuid.uuid4())
        client.xadd(redis_keys.EVENTS_STREAM, {"b": "[" + ",".join(map(encode_event, lifecycle(before))) + "]"})
        assert sum(recorder.run_once() for _ in range(3)) == 3  # its own pending entries first, then new ones
        # Redis restarts without its data: stream and consumer group are gone.
        client.flushall()
        client.xadd(redis_keys.EVENTS_STREAM, {"b": "[" + ",".join(map(encode_event, lifecycle(after))) + "]"})
        assert recorder.run_once() == 0  # NOGROUP: the group is made again
        written = sum(recorder.run_once() for _ in range(3))
        assert written == 3
        with session_scope() as session:
            row = session.get(JobExecution, after)
            assert row is not None and row.status == "completed"
    finally:
        server.stop()
