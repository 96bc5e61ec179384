"""Weighted consumption with a real worker: a queue of weight 3 gets about three takes in four.

Plain round robin (or strict -Q order with the heavy queue second) would give the heavy
queue half (or none) of the first takes; the assertions leave a wide margin for chance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import delete

from app import redis_keys
from app.control.weighted_cycle import CACHE_TTL_S
from app.db import db
from app.models import QueueSettings
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess
from tests.sample_jobs_queues import NoteTake

pytestmark = [pytest.mark.redis]

#: Jobs put in each queue before the worker starts: more than the test watches it take.
FILLED = 200


@pytest.fixture()
def queues(unique: str, redis_client: redis.Redis) -> Iterator[tuple[str, str]]:
    light, heavy = f"light-{unique}", f"heavy-{unique}"
    yield light, heavy
    db.session.rollback()
    db.session.execute(delete(QueueSettings).where(QueueSettings.name.in_([light, heavy])))
    db.session.commit()
    redis_client.hdel(redis_keys.QUEUE_WEIGHTS, light, heavy)


def takes(redis_client: redis.Redis, key: str) -> list[tuple[str, float]]:
    entries = [(raw.decode() if isinstance(raw, bytes) else raw).split(" ") for raw in redis_client.lrange(key, 0, -1)]
    return [(queue, float(at)) for queue, at in entries]


def test_a_worker_takes_from_its_queues_in_proportion_to_their_weights(
    client: Any, auth: Any, queues: tuple[str, str], redis_client: redis.Redis, tmp_path: Path, unique: str
) -> None:
    light, heavy = queues
    key = f"tests:takes:{unique}"
    admin = auth("admin")
    # Given: weights 1 and 3, and both queues full. The light queue comes first in -Q, so
    # strict order would take only from it, and round robin half from each.
    assert client.put(f"/api/queues/{light}", json={"weight": 1}, headers=admin).status_code == 200
    assert client.put(f"/api/queues/{heavy}", json={"weight": 3}, headers=admin).status_code == 200
    for _ in range(FILLED):
        NoteTake.on_queue(light).dispatch(key=key, queue=light, seconds=0.01)
        NoteTake.on_queue(heavy).dispatch(key=key, queue=heavy, seconds=0.01)
    # When: one worker, one process, consumes both.
    worker = WorkerProcess(
        tmp_path / "weighted.log",
        queues=f"{light},{heavy}",
        concurrency=1,
        hostname=f"weighted-{unique}@%h",
        env={"CELERIAC_TASK_MODULES": "tests.sample_jobs,tests.sample_jobs_queues"},
    )
    try:
        first = wait_for(lambda: (t := takes(redis_client, key)) and len(t) >= 100 and t, timeout=90, what="100 takes")
        # Then: about 75 of the first 100 from the heavy queue (round robin: 50; strict order: 0).
        from_heavy = sum(1 for queue, _ in first[:100] if queue == heavy)
        assert from_heavy >= 62, f"{from_heavy} of 100 takes from the weight-3 queue"
        assert from_heavy <= 92, "the light queue must not starve"

        # When: the weights are swapped while the worker runs (no restart).
        flipped_at = time.time()
        client.put(f"/api/queues/{light}", json={"weight": 3}, headers=admin)
        client.put(f"/api/queues/{heavy}", json={"weight": 1}, headers=admin)
        settled = flipped_at + CACHE_TTL_S + 0.5

        def after_change() -> list[tuple[str, float]]:
            later = [take for take in takes(redis_client, key) if take[1] >= settled]
            return later if len(later) >= 40 else []

        later = wait_for(after_change, timeout=90, what="40 takes after the change")
        # Then: within seconds the light queue gets the larger share.
        from_light = sum(1 for queue, _ in later[:40] if queue == light)
        assert from_light >= 22, f"{from_light} of 40 takes from the queue now weighted 3"
    finally:
        worker.stop()
        redis_client.delete(key)
        for name in queues:
            redis_client.delete(name, *[f"{name}:{p}" for p in range(1, 10)])
