"""Beat outlives Redis outages and data loss (R1), with a real `celery beat` on a private Redis.

Started as API.md says (`-S redbeat.RedBeatScheduler`): stock RedBeat exits at the first
Redis error; Celeriac's scheduler waits, takes its lock again and restores its entries.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from app import redis_keys
from app.embedded_redis import start_embedded
from app.schedules.entries import entry_key
from tests.conftest import wait_for
from tests.integration.test_schedules_beat import BeatProcess, _schedule, clean_schedules  # noqa: F401  (fixture)

pytestmark = [pytest.mark.redis, pytest.mark.usefixtures("clean_schedules")]

STATIC_ENTRY = redis_keys.REDBEAT_PREFIX + "celeriac-purge-history"


def test_beat_survives_an_outage_and_restores_its_entries_after_redis_lost_them(
    tmp_path: Path,
) -> None:
    server = start_embedded(tmp_path / "redis", persist=True)
    port = server.port
    schedule_id = _schedule("0 3 * * *")  # in SQL (job_schedules): beat restores its entry from there
    beat = BeatProcess(tmp_path / "beat.log", env={"REDIS_URL": server.url})
    client = redis.Redis(port=port)
    try:
        beat.wait_started()
        assert client.exists(STATIC_ENTRY) and client.exists(entry_key(schedule_id))
        # An outage: Redis stops (with its data on disk) and comes back 6 s later.
        server.stop()
        wait_for(lambda: "Redis unavailable or lock lost" in beat.text(), what="beat to notice the outage")
        assert beat.process.poll() is None, beat.text()[-3000:]
        server = start_embedded(tmp_path / "redis", port=port, persist=True)
        wait_for(lambda: beat.text().count("beat: recovered") >= 1, timeout=30, what="beat to recover")
        assert client.get(redis_keys.REDBEAT_PREFIX + "lock") is not None
        # Redis comes back without its data: the lock and every entry are gone.
        client.flushall()
        wait_for(lambda: beat.text().count("beat: recovered") >= 2, timeout=30, what="beat to recover again")
        assert beat.process.poll() is None
        assert client.exists(STATIC_ENTRY), "static entries restored"
        assert client.exists(entry_key(schedule_id)), "schedules' entries restored from job_schedules"
        assert client.get(redis_keys.REDBEAT_PREFIX + "lock") is not None
    finally:
        beat.stop()
        server.stop()


def test_a_second_beat_stands_by_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    server = start_embedded(tmp_path / "redis", persist=False)
    client = redis.Redis(port=server.port)
    first = BeatProcess(tmp_path / "first.log", env={"REDIS_URL": server.url})
    second = None
    try:
        first.wait_started()
        second = BeatProcess(tmp_path / "second.log", env={"REDIS_URL": server.url})
        # The lock goes (lost with Redis's data): exactly one of them takes it again.
        client.delete(redis_keys.REDBEAT_PREFIX + "lock")
        wait_for(lambda: client.get(redis_keys.REDBEAT_PREFIX + "lock") is not None, timeout=30, what="a new holder")
        assert first.process.poll() is None and second.process.poll() is None
    finally:
        first.stop()
        if second is not None:
            second.stop()
        server.stop()
