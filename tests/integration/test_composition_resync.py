"""Composition state Redis lost is rebuilt from SQL (R1): held jobs, batch counters, chain catches.

Each test holds a group's first jobs on a queue no worker consumes, deletes the Redis keys
a restart without data would lose, then lets a worker take that queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import redis_keys
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess, reconcile_until
from tests.integration.test_composition import dispatch, job, marker, runs, wait_group, wait_status

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def held_on(queue: str, step: dict[str, Any]) -> dict[str, Any]:
    return {**step, "options": {"queue": queue}}


def late_worker(tmp_path: Path, queue: str, unique: str) -> WorkerProcess:
    return WorkerProcess(tmp_path / "late.log", queues=queue, concurrency=1, hostname=f"late-{unique}@%h")


def test_a_job_waiting_for_its_dependency_is_held_again_after_redis_lost_it(
    stack: Any, reconciler: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    headers = auth("operator")
    queue = f"held-{unique}"
    first = dispatch(client, headers, "tests.marker", {"key": f"{unique}-first"}, queue=queue).get_json()["id"]
    second = dispatch(client, headers, "tests.marker", {"key": unique}, depends_on=[first]).get_json()["id"]
    assert redis_client.exists(redis_keys.held_job(second))
    redis_client.delete(
        redis_keys.held_job(second), redis_keys.job_dependencies(second), redis_keys.job_dependants(first)
    )
    reconcile_until(reconciler, lambda r: r.reheld >= 1, "the waiting job to be held again")
    assert redis_client.exists(redis_keys.held_job(second))
    late = late_worker(tmp_path, queue, unique)
    try:
        wait_status(client, headers, first, "completed")
        wait_status(client, headers, second, "completed")
    finally:
        late.stop()
    assert runs(redis_client, unique) == 1


def test_a_batch_whose_counters_redis_lost_still_runs_its_callbacks_once(
    stack: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    headers = auth("operator")
    queue = f"held-{unique}"
    body = {
        "jobs": [held_on(queue, job("demo.echo", value=i)) for i in range(3)],
        "then": marker(f"{unique}-then"),
        "finally": marker(f"{unique}-finally"),
    }
    created = client.post("/api/batches", json=body, headers=headers).get_json()
    batch = client.get(f"/api/batches/{created['id']}", headers=headers).get_json()
    redis_client.delete(
        redis_keys.batch(created["id"]),
        redis_keys.held_job(batch["then_job_id"]),
        redis_keys.held_job(batch["finally_job_id"]),
    )
    late = late_worker(tmp_path, queue, unique)
    try:
        wait_group(client, headers, f"/api/batches/{created['id']}", "finished")
        wait_for(lambda: runs(redis_client, f"{unique}-then") == 1, timeout=30, what="then ran")
        wait_for(lambda: runs(redis_client, f"{unique}-finally") == 1, timeout=30, what="finally ran")
    finally:
        late.stop()
    assert wait_status(client, headers, batch["then_job_id"], "completed")["job_class"] == "tests.marker"
    assert runs(redis_client, f"{unique}-then") == 1 and runs(redis_client, f"{unique}-finally") == 1


def test_a_failed_chain_step_still_runs_the_catch_redis_lost(
    stack: Any, reconciler: Any, client: Any, auth: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    headers = auth("operator")
    queue = f"held-{unique}"
    body = {
        "jobs": [held_on(queue, job("demo.fail", message="step one")), job("demo.echo", value=2)],
        "catch": marker(unique),
    }
    created = client.post("/api/chains", json=body, headers=headers).get_json()
    step_two = created["job_ids"][1]
    catch_id = client.get(f"/api/chains/{created['id']}", headers=headers).get_json()["catch_job_id"]
    assert redis_client.exists(redis_keys.held_job(catch_id))
    redis_client.delete(
        redis_keys.chain(created["id"]),
        redis_keys.held_job(step_two),
        redis_keys.job_dependencies(step_two),
        redis_keys.held_job(catch_id),
    )
    reconcile_until(reconciler, lambda r: r.reheld >= 1, "the second step to be held again")
    late = late_worker(tmp_path, queue, unique)
    try:
        wait_group(client, headers, f"/api/chains/{created['id']}", "failed")
        assert "chain stopped" in (wait_status(client, headers, step_two, "cancelled")["error_message"] or "")
        wait_for(lambda: runs(redis_client, unique) == 1, timeout=30, what="catch ran")
    finally:
        late.stop()
    assert wait_status(client, headers, catch_id, "completed")["job_class"] == "tests.marker"
