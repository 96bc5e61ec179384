"""Queue stats from the recorder's per-minute aggregates, with a real worker (M1)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_completed_failed_and_runtimes_come_from_the_aggregates(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    headers = auth("operator", tenant=f"stats-{unique}")
    ids = []
    for body in (
        {"job_class": "demo.sleep", "payload": {"seconds": 0.06}},
        {"job_class": "demo.sleep", "payload": {"seconds": 0.06}},
        {"job_class": "demo.fail", "payload": {"message": "x"}},
    ):
        ids.append(client.post("/api/jobs/dispatch", json=body, headers=headers).get_json()["id"])

    def finished() -> bool:
        return all(
            client.get(f"/api/jobs/{i}", headers=headers).get_json()["status"] in ("completed", "failed") for i in ids
        )

    wait_for(finished, timeout=40, what="jobs to finish")
    stats = client.get("/api/jobs/queue/default/stats", headers=headers).get_json()
    assert stats["completed"] == 2 and stats["failed"] == 1, "this tenant's hour only"
    assert stats["avg_runtime_ms"] is not None and stats["avg_runtime_ms"] >= 60
    assert stats["p95_runtime_ms"] is not None and stats["p95_runtime_ms"] >= 50
    assert stats["throughput_per_minute"] == round(2 / 60, 3)
