"""`flask queue top --once` against a real worker running a real job that reports progress."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def cells(output: str, first_cell: str) -> list[str]:
    """The cells of the table row whose first cell is `first_cell` (empty when none)."""
    for line in output.splitlines():
        found = [cell.strip() for cell in line.split("│")[1:-1]]
        if found and found[0] == first_cell:
            return found
    return []


def test_top_shows_a_running_jobs_progress_its_queue_and_its_worker(
    stack: Any, app: Any, client: Any, auth: Any, unique: str
) -> None:
    from ops_ui.cli_top import top

    tenant = f"top-{unique}"
    headers = auth("operator", tenant)
    answer = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.progress", "payload": {"steps": 10, "seconds": 0.5}},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    job_id = answer.get_json()["id"]

    def job() -> dict[str, Any]:
        body: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        return body

    wait_for(lambda: (job()["progress"] or 0) in range(1, 90), timeout=40, what="the job to report progress")

    result = app.test_cli_runner().invoke(top, ["--once", "--tenant", tenant])

    assert result.exit_code == 0, result.output
    row = cells(result.output, job_id)
    assert row, result.output
    _, job_class, queue, worker, bar, progress = row
    assert (job_class, queue) == ("demo.progress", "default") and worker.startswith("test-worker@")
    percent = int(progress.split("%")[0])
    assert 1 <= percent < 100 and "/10)" in progress and "step " in progress and "━" in bar
    assert cells(result.output, "default")[3] == "1"  # running in its queue (this tenant's)
    host = cells(result.output, worker)
    assert host[1] == "online" and "default" in host[4]
    wait_for(lambda: job()["status"] == "completed", timeout=40, what="the job to finish")
