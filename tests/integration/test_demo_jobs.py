"""The diagnostic jobs of API.md, driven through the API as an outside client would."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def run(client: Any, headers: dict[str, str], job_class: str, payload: dict[str, Any], *final: str) -> dict[str, Any]:
    response = client.post("/api/jobs/dispatch", json={"job_class": job_class, "payload": payload}, headers=headers)
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        return job if job["status"] in final else None

    return wait_for(finished, timeout=40, what=f"{job_class} to finish")


def test_demo_jobs_behave_as_documented(stack: Any, client: Any, auth: Any, unique: str) -> None:
    headers = auth("operator")
    echo = run(client, headers, "demo.echo", {"value": [1, "a"], "previous_result": "ignored"}, "completed")
    assert echo["result"] == [1, "a"]
    chained = run(client, headers, "demo.echo", {"previous_result": 41}, "completed")
    assert chained["result"] == 41
    slept = run(client, headers, "demo.sleep", {"seconds": 0.2}, "completed")
    assert slept["result"] == 0.2 and slept["execution_time_ms"] >= 200
    failed = run(client, headers, "demo.fail", {"message": "kaput"}, "failed", "completed")
    assert failed["status"] == "failed" and failed["error_message"] == "RuntimeError: kaput"
    assert "RuntimeError: kaput" in failed["exception_trace"]
    flaky = run(client, headers, "demo.flaky", {"key": unique, "failures": 2}, "completed", "failed")
    assert flaky["status"] == "completed" and flaky["result"] == "ok" and flaky["attempts"] == 3
    added = run(client, headers, "demo.add", {"x": 2, "y": 40}, "completed")
    assert added["result"] == 42 and added["tenant_id"] == "acme"
