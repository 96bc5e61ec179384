"""Job progress end to end: a real worker reports, the recorder writes, the API shows it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_demo_progress_shows_intermediate_progress_then_100(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    response = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.progress", "payload": {"steps": 5, "seconds": 0.6}},
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["id"]
    seen: list[tuple[int | None, str | None]] = []

    def job() -> dict[str, Any]:
        answer: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        seen.append((answer["progress"], answer["progress_message"]))
        return answer

    # Given a job reporting after each of 5 steps, a poller sees a value strictly in between.
    middle = wait_for(lambda: (job()["progress"] or 0) in range(1, 100) and seen[-1], timeout=40, what="progress")
    assert middle[1] is not None and middle[1].startswith("step ")
    done = wait_for(lambda: (answer := job())["status"] == "completed" and answer, timeout=40, what="completion")
    assert done["progress"] == 100 and done["progress_message"] == "step 5 of 5"
    assert done["progress_done"] == 5 and done["progress_total"] == 5 and done["result"] == 5
    percentages = [p for p, _ in seen if p is not None]
    assert percentages == sorted(percentages), "the bar never moves back"


def test_demo_progress_with_bad_arguments_fails_readably(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    response = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.progress", "payload": {"steps": -1, "seconds": 0}},
        headers=headers,
    )
    job_id = response.get_json()["id"]
    failed = wait_for(
        lambda: (a := client.get(f"/api/jobs/{job_id}", headers=headers).get_json())["status"] == "failed" and a,
        timeout=40,
        what="failure",
    )
    assert "steps and seconds must be >= 0" in failed["error_message"]


def test_a_plain_bound_celery_task_reports_progress_too(stack: Any, client: Any, auth: Any) -> None:
    headers = auth("operator")
    response = client.post(
        "/api/jobs/dispatch", json={"job_class": "tests.plain_progress", "payload": {"steps": 4}}, headers=headers
    )
    assert response.status_code == 201, response.get_json()
    job_id = response.get_json()["id"]
    done = wait_for(
        lambda: (a := client.get(f"/api/jobs/{job_id}", headers=headers).get_json())["status"] == "completed" and a,
        timeout=40,
        what="completion",
    )
    assert (done["progress"], done["progress_done"], done["progress_total"]) == (100, 4, 4)
    assert done["progress_message"] == "plain 4"
