"""Performance page (U2, U3): per-class figures and recommendations as the API gives them, charts, tenancy."""

from __future__ import annotations

import uuid
from typing import Any

from tests.unit.console_data import add_finished


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def test_anonymous_goes_to_login_and_viewers_may_read(client: Any, console: Any) -> None:
    response = client.get("/performance")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = console(role="viewer", tenant=_tenant()).get("/performance")
    assert page.status_code == 200 and "No job finished in the last hour" in page.get_data(as_text=True)


def test_class_table_matches_the_api_and_recommends(console: Any, client: Any, auth: Any) -> None:
    tenant = _tenant()
    add_finished(tenant, "completed", count=6, job_class="reports.Build", minutes_ago=2, runtime_ms=120)
    add_finished(tenant, "failed", count=4, job_class="reports.Build", minutes_ago=2)
    add_finished(tenant, "completed", count=2, job_class="mail.Send", minutes_ago=1, runtime_ms=30, waited_ms=2000)
    add_finished(tenant, "retried", count=3, job_class="mail.Send", minutes_ago=1)
    add_finished(_tenant(), "completed", count=50, job_class="other.Tenant", minutes_ago=1)
    api = client.get("/api/monitoring/performance?hours=1", headers=auth("viewer", tenant)).get_json()
    html = console(role="viewer", tenant=tenant).get("/performance").get_data(as_text=True)
    assert "reports.Build" in html and "mail.Send" in html and "other.Tenant" not in html
    assert "60.0 %" in html  # 6 of 10 finished runs succeeded
    for advice in api["recommendations"]:
        assert advice.split(" - ")[0] in html
    assert "40 % of runs failed" in html
    mail = html.split(">mail.Send</a>")[1].split("</tr>")[0]
    assert ">3 <span" in mail and "(60 %)" in mail  # 3 retried of 5 attempts
    assert "2.0 s" in mail  # queue wait
    # The busiest class is charted by default, its throughput and p95 as SVG.
    assert "reports.Build over the last hour" in html and "series-p95" in html and "series-throughput" in html


def test_class_selector_and_day_window(console: Any) -> None:
    tenant = _tenant()
    add_finished(tenant, "completed", count=9, job_class="busy.Job", minutes_ago=1)
    add_finished(tenant, "completed", count=3, job_class="quiet.Job", minutes_ago=200, runtime_ms=900)
    session = console(role="viewer", tenant=tenant)
    hour = session.get("/performance").get_data(as_text=True)
    assert "busy.Job over the last hour" in hour and "quiet.Job" not in hour
    day = session.get("/performance?window=day&job_class=quiet.Job").get_data(as_text=True)
    assert "quiet.Job over the last day" in day and "by 15 minutes" in day and ": 3 completed" in day
    unknown = session.get("/performance?job_class=nope.Job").get_data(as_text=True)
    assert "busy.Job over the last hour" in unknown
    assert session.get("/performance?window=week").status_code == 422


def test_live_part_refreshes_every_15_seconds(console: Any) -> None:
    session = console(role="viewer", tenant=_tenant())
    assert 'hx-trigger="every 15s"' in session.get("/performance").get_data(as_text=True)
    part = session.get("/performance", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert 'id="performance-live"' in part and "<html" not in part
