"""The recorder heals after Redis lost its data (R1): it recreates its stream and group."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Iterator
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
from tests.conftest import IN_CI, wait_for
from tests.unit.test_api_outages import PrivateRedis
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


@pytest.fixture()
def real_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own (Redis, not the embedded Valkey: the answer differs)."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_recorder_survives_its_stream_vanishing_while_its_read_is_blocked(real_redis: PrivateRedis) -> None:
    """FLUSHALL while the recorder waits in XREADGROUP: Redis answers "UNBLOCKED the stream key
    no longer exists" (the embedded Valkey does not), and the recorder makes its group again
    and records what comes next instead of dying."""
    import threading

    server = real_redis
    client = redis.Redis.from_url(server.url)
    settings = dataclasses.replace(get_settings(), redis_url=server.url, recorder_block_ms=10_000)
    recorder = Recorder(settings, client, name="unblocked")
    try:
        recorder.ensure_group()
        assert recorder.run_once() == 0  # its own pending entries: none
        outcome: list[int | BaseException] = []

        def blocked_read() -> None:
            try:
                outcome.append(recorder.run_once())
            except BaseException as exc:  # what the test reports
                outcome.append(exc)

        reader = threading.Thread(target=blocked_read)
        reader.start()
        watcher = redis.Redis.from_url(server.url)
        wait_for(
            lambda: any(c.get("cmd") == "xreadgroup" for c in watcher.client_list()), timeout=10, what="blocked read"
        )
        client.flushall()
        reader.join(timeout=15)
        assert outcome == [0]
        job_id = str(uuid.uuid4())
        client.xadd(redis_keys.EVENTS_STREAM, {"b": "[" + ",".join(map(encode_event, lifecycle(job_id))) + "]"})
        assert sum(recorder.run_once() for _ in range(3)) == 3
        with session_scope() as session:
            row = session.get(JobExecution, job_id)
            assert row is not None and row.status == "completed"
    finally:
        client.close()
