"""What an operator reported (issue 13, item 7): the exception type shown once, recommendations
that link to console pages, and Celeriac's own maintenance tasks hidden by default."""

from __future__ import annotations

import html as html_lib
import re
from typing import Any

import pytest

from app.monitoring import health
from app.monitoring.advice import advice, failed_page
from ops_ui.shown_errors import without_type
from tests.unit.console_data import add_execution, add_finished
from tests.unit.test_api_failures import record_failure

SYSTEM_CLASS = "celeriac.maintenance.purge_history"


@pytest.fixture()
def tenant(app: Any, unique: str) -> str:
    return f"f2-{unique}"


def page_text(response: Any) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return str(response.get_data(as_text=True))


# --- the exception type once ------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind", "shown"),
    [
        ("RuntimeError: card declined", "RuntimeError", "card declined"),
        ("card declined", "RuntimeError", "card declined"),
        ("RuntimeError", "RuntimeError", ""),
        ("ErrorCode 7: bad", "Error", "ErrorCode 7: bad"),
        (None, "RuntimeError", ""),
        ("ValueError: x", None, "ValueError: x"),
    ],
)
def test_without_type_drops_only_a_leading_type_prefix(message: str | None, kind: str | None, shown: str) -> None:
    assert without_type(message, kind) == shown


def test_failed_page_shows_the_exception_type_once_and_the_api_keeps_the_message(
    console: Any, client: Any, auth: Any, tenant: str
) -> None:
    job = record_failure(tenant, "mail", "card declined for order 42", 1_700_000_000.0)
    page = page_text(console(role="viewer", tenant=tenant).get("/failed"))
    assert "RuntimeError: card declined" not in page  # neither in the groups nor in the recent list
    groups = re.search(r'<table class="failure-groups">.*?</table>', page, re.S)
    assert groups and groups.group(0).count("RuntimeError</code>") == 1
    assert "card declined for order &lt;num&gt;" in groups.group(0) or "card declined for order 42" in groups.group(0)
    recent = re.search(r'<table class="responsive recent-failed">.*?</table>', page, re.S)
    assert recent and "<code>RuntimeError</code>" in recent.group(0) and "card declined for order 42" in recent.group(0)
    # The API's values stay as they are.
    answer = client.get(f"/api/jobs/{job}", headers=auth("viewer", tenant)).get_json()
    assert answer["error_message"] == "RuntimeError: card declined for order 42"


def test_a_long_message_is_cut_with_the_whole_text_in_a_title_and_details(console: Any, tenant: str) -> None:
    long = "upstream said: " + "x" * 400
    record_failure(tenant, "mail", long, 1_700_000_000.0)
    page = page_text(console(role="viewer", tenant=tenant).get("/failed"))
    groups = re.search(r'<table class="failure-groups">.*?</table>', page, re.S)
    assert groups is not None
    assert f'title="{long}"' in groups.group(0) and "<summary>Full message</summary>" in groups.group(0)
    assert f"<pre>{long}</pre>" in groups.group(0)


# --- recommendations link to console pages -------------------------------------------------


def test_advice_keeps_the_api_text_and_renders_a_console_link(app: Any) -> None:
    from ops_ui.advice_links import advice_html

    given = advice("queue q: see ", failed_page("GET /api/monitoring/failures"), " for the causes")
    assert given.text == "queue q: see GET /api/monitoring/failures for the causes" == str(given)
    with app.test_request_context():
        shown = str(advice_html(given))
        assert shown == 'queue q: see <a href="/failed">the Failed page</a> for the causes'
        assert str(advice_html("plain <text>")) == "plain &lt;text&gt;"


def test_health_recommendations_stay_text_in_the_api_and_link_in_the_report() -> None:
    report = health.Report()
    report.add(health.WARNING, "queue q", "many failed", advice("see ", failed_page("GET /api/monitoring/failures")))
    report.add(health.WARNING, "queue q", "again", "a plain sentence")
    report.add(health.WARNING, "queue q", "dup", "a plain sentence")
    assert report.as_dict()["recommendations"] == ["see GET /api/monitoring/failures", "a plain sentence"]
    assert [len(a.links) for a in report.advice] == [1, 0]


def test_performance_recommendations_link_to_the_failed_page(
    console: Any, client: Any, auth: Any, tenant: str
) -> None:
    add_finished(tenant, "completed", 3, job_class="shop.charge")
    add_finished(tenant, "failed", 3, job_class="shop.charge")
    page = page_text(console(role="viewer", tenant=tenant).get("/performance"))
    advice_list = re.search(r'<section class="card recommendations".*?</section>', page, re.S)
    assert advice_list is not None, page
    assert '<a href="/failed">the Failed page</a>' in advice_list.group(0)
    assert "/api/monitoring/failures" not in advice_list.group(0)
    # The API's sentence is unchanged.
    body = client.get("/api/monitoring/performance", headers=auth("viewer", tenant)).get_json()
    assert "shop.charge: 50 % of runs failed - see /api/monitoring/failures for the causes; retry only failures " \
        "that can succeed" in body["recommendations"]


def test_dashboard_health_advice_links_instead_of_naming_api_paths(console: Any, tenant: str) -> None:
    page = page_text(console(role="viewer", tenant=tenant).get("/"))
    section = re.search(r'<ul class="recommendations">.*?</ul>', page, re.S)
    if section is not None:  # whatever the shared test Redis holds, no advice names an API path to open
        assert "GET /api/monitoring/" not in html_lib.unescape(section.group(0))


# --- system jobs hidden by default --------------------------------------------------------------


def test_jobs_list_hides_maintenance_tasks_unless_asked(console: Any, client: Any, auth: Any, tenant: str) -> None:
    mine = add_execution(tenant, "shop.charge")
    system = add_execution(tenant, SYSTEM_CLASS)
    viewer = console(role="viewer", tenant=tenant)
    listed = page_text(viewer.get("/jobs"))
    assert f"/jobs/{mine.id}" in listed and f"/jobs/{system.id}" not in listed
    assert 'name="system" value="1"' in listed and "Show system jobs" in listed
    shown = page_text(viewer.get("/jobs?system=1"))
    assert f"/jobs/{system.id}" in shown and f"/jobs/{mine.id}" in shown
    assert re.search(r'id="f-system"[^>]*checked', shown)
    # The live poll and the status tabs keep the choice.
    assert "system=1" in re.search(r'hx-get="([^"]*)"', shown).group(1)  # type: ignore[union-attr]
    # Naming the class shows them without the box.
    named = page_text(viewer.get(f"/jobs?job_class={SYSTEM_CLASS}"))
    assert f"/jobs/{system.id}" in named
    # Status counts follow the list.
    tabs = re.search(r'<nav class="status-tabs".*?</nav>', listed, re.S)
    assert tabs and re.search(r"completed\s*<span class=\"tab-count status-completed\">1</span>", tabs.group(0))
    # The API keeps listing everything.
    ids = {j["id"] for j in client.get("/api/jobs?limit=100", headers=auth("viewer", tenant)).get_json()["items"]}
    assert {mine.id, system.id} <= ids


def test_performance_hides_system_classes_but_advises_on_their_failures(console: Any, tenant: str) -> None:
    add_finished(tenant, "completed", 5, job_class="shop.charge")
    add_finished(tenant, "completed", 5, job_class=SYSTEM_CLASS, runtime_ms=10)
    add_finished(tenant, "completed", 1, job_class=SYSTEM_CLASS, runtime_ms=90_000)  # p95 far above average
    viewer = console(role="viewer", tenant=tenant)
    page = page_text(viewer.get("/performance"))
    table = re.search(r"<table class=\"responsive\">.*?</table>", page, re.S)
    assert table and "shop.charge" in table.group(0) and SYSTEM_CLASS not in table.group(0)
    assert "1 system job class (Celeriac's own maintenance tasks) hidden" in page
    assert SYSTEM_CLASS not in page.split("<section aria-labelledby=\"classes-title\">")[0]  # no advice about it
    shown = page_text(viewer.get("/performance?system=1"))
    assert SYSTEM_CLASS in re.search(r"<table class=\"responsive\">.*?</table>", shown, re.S).group(0)  # type: ignore[union-attr]
    # A failing maintenance task is still advised about, even while hidden.
    add_finished(tenant, "failed", 5, job_class=SYSTEM_CLASS)
    again = page_text(viewer.get("/performance"))
    advice_list = re.search(r'<section class="card recommendations".*?</section>', again, re.S)
    assert advice_list is not None
    assert f"{SYSTEM_CLASS}: " in advice_list.group(0) and "runs failed" in advice_list.group(0)
