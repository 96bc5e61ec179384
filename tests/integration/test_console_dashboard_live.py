"""The dashboard with a real worker and recorder (U2, U3): a dispatched job shows up in the
5-second poll as pending, then completed, and is counted in the charts and performance table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def test_dispatched_jobs_appear_in_the_dashboard_poll_and_performance(
    stack: Any, client: Any, auth: Any, console: Any, unique: str
) -> None:
    tenant = f"dash-{unique}"
    headers = auth("operator", tenant)
    session = console(role="viewer", tenant=tenant)
    assert "dispatch your first one" in session.get("/").get_data(as_text=True)
    done = client.post("/api/jobs/dispatch", json={"job_class": "demo.echo", "payload": {"value": 1}}, headers=headers)
    failed = client.post(
        "/api/jobs/dispatch", json={"job_class": "demo.fail", "payload": {"message": "x"}}, headers=headers
    )
    ids = [done.get_json()["id"], failed.get_json()["id"]]

    def poll() -> str:
        return str(session.get("/", headers={"HX-Request": "true"}).get_data(as_text=True))

    def both_finished() -> bool:
        html = poll()
        return all(f"/jobs/{i}" in html for i in ids) and "status-completed" in html and "status-failed" in html

    wait_for(both_finished, timeout=40, what="both jobs finished in the dashboard poll")

    def charted() -> str | None:
        html = poll()
        return html if ": 1 failed" in html and ": 1 completed" in html else None

    html = wait_for(charted, timeout=20, what="the recorder's aggregates charted")
    assert "1 job failed in the last hour" in html
    perf = session.get("/performance").get_data(as_text=True)
    assert "demo.echo" in perf and "demo.fail" in perf
