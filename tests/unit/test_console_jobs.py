"""The console's Jobs list, bulk actions and job detail: what an operator sees and can do."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from app.backends.current import backends
from app.db import db
from app.models import AuditLog, JobAttempt, JobExecution
from app.services import bulk_jobs
from ops_ui.settings import app_settings
from tests.job_rows import T0, add_job


@pytest.fixture()
def tenant(app: Any, unique: str) -> str:
    return f"cj-{unique}"


def html(response: Any) -> str:
    return str(response.get_data(as_text=True))


def detail_links(page: str) -> set[str]:
    return set(re.findall(r'href="/jobs/([0-9a-f-]{36})"', page))


def audit(action: str, tenant: str) -> list[AuditLog]:
    db.session.expire_all()
    return list(db.session.scalars(select(AuditLog).where(AuditLog.action == action, AuditLog.tenant_id == tenant)))


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/jobs", "/jobs/some-id", "/jobs/bulk/preview?action=retry"])
def test_anonymous_visitors_are_sent_to_login(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize(
    "path", ["/jobs/bulk", "/jobs/bulk/matching", "/jobs/x/retry", "/jobs/x/cancel", "/jobs/x/retry-edited"]
)
def test_anonymous_posts_are_refused(client: Any, path: str) -> None:
    """Without a session there is no CSRF token either: refused before the login check."""
    response = client.post(path, data={"action": "retry"})
    assert response.status_code == 400


def test_viewers_see_jobs_but_no_actions_and_may_not_post(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    failed = add_job(tenant, "failed")
    viewer = console(role="viewer", tenant=tenant)
    page = html(viewer.get("/jobs"))
    assert failed in detail_links(page) and 'name="ids"' not in page and "Retry selected" not in page
    detail = html(viewer.get(f"/jobs/{failed}"))
    assert "Retry with edited payload" not in detail and f'action="/jobs/{failed}/retry"' not in detail
    for path, data in [
        (f"/jobs/{failed}/retry", {}),
        ("/jobs/bulk", {"action": "retry", "ids": [failed]}),
        ("/jobs/bulk/matching", {"action": "retry"}),
        (f"/jobs/{failed}/retry-edited", {"payload": "{}"}),
    ]:
        assert viewer.post(path, data=data).status_code == 403
    assert viewer.get("/jobs/bulk/preview?action=retry").status_code == 403
    assert recording_publisher == []


def test_other_tenants_jobs_are_404_and_never_listed(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    theirs = add_job(f"{tenant}-other", "failed")
    mine = add_job(tenant, "failed")
    operator = console(tenant=tenant)
    assert operator.get(f"/jobs/{theirs}").status_code == 404
    for action in ("retry", "cancel", "retry-edited"):
        assert operator.post(f"/jobs/{theirs}/{action}", data={"payload": "{}"}).status_code == 404
    # A tenant filter in the URL is ignored for everyone but a superadmin.
    page = html(operator.get(f"/jobs?tenant={tenant}-other"))
    assert mine in detail_links(page) and theirs not in detail_links(page)
    assert 'name="tenant"' not in page
    operator.post("/jobs/bulk", data={"action": "retry", "ids": [theirs]})
    assert recording_publisher == []
    superadmin = console(role="admin", tenant=None, superadmin=True)
    both = html(superadmin.get(f"/jobs?tenant={tenant}-other"))
    assert detail_links(both) >= {theirs} and mine not in detail_links(both) and 'name="tenant"' in both


def test_actions_without_csrf_token_are_refused(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    failed = add_job(tenant, "failed")
    operator = console(tenant=tenant)
    assert operator.post(f"/jobs/{failed}/retry", csrf=False).status_code == 400
    assert operator.post("/jobs/bulk", data={"action": "retry", "ids": [failed]}, csrf=False).status_code == 400
    assert operator.post("/jobs/bulk/matching", data={"action": "retry"}, csrf=False).status_code == 400
    assert recording_publisher == []


# --- the list ----------------------------------------------------------------------------


def test_filters_narrow_the_list_and_keep_their_values(console: Any, tenant: str) -> None:
    mail = add_job(tenant, "completed", minutes=1, queue="mail", tags=["vip"], payload={"to": "ada@example.com"})
    add_job(tenant, "failed", minutes=2, queue="mail")
    other = add_job(tenant, "completed", minutes=3, queue="reports")
    operator = console(tenant=tenant)
    assert detail_links(html(operator.get("/jobs?status=completed&queue=mail"))) == {mail}
    assert detail_links(html(operator.get("/jobs?tag=vip"))) == {mail}
    assert detail_links(html(operator.get("/jobs?q=ada%40example"))) == {mail}
    assert detail_links(html(operator.get(f"/jobs?id={other[:6]}"))) == {other}
    ranged = html(operator.get("/jobs?from=2026-11-01T12:02&to=2026-11-01T12:03:30"))
    assert other in detail_links(ranged) and mail not in detail_links(ranged)
    page = html(operator.get("/jobs?queue=mail&status=completed"))
    assert 'value="mail"' in page and re.search(r'<option value="completed"\s+selected', page)
    assert "No job matches these filters" in html(operator.get("/jobs?queue=nothing-here"))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=exploded", "unknown status"),
        ("from=last+tuesday", "not a date and time"),
        ("from=2026-11-02T00:00&to=2026-11-01T00:00", "before Created from"),
        ("id=ab", "at least 4 characters"),
        ("cursor=%%%", "cursor is not valid"),
    ],
)
def test_invalid_filters_are_a_form_error_not_a_crash(console: Any, tenant: str, query: str, message: str) -> None:
    add_job(tenant, "failed")
    response = console(tenant=tenant).get(f"/jobs?{query}")
    assert response.status_code == 422
    page = html(response)
    assert 'role="alert"' in page and message in page and detail_links(page) == set()


def test_keyset_pages_and_only_the_first_page_polls(console: Any, tenant: str) -> None:
    ids = [add_job(tenant, "completed", minutes=n) for n in range(55)]
    operator = console(tenant=tenant)
    first = html(operator.get("/jobs"))
    assert detail_links(first) == set(ids[5:]) and 'hx-trigger="every 5s"' in first
    older = re.search(r'href="(/jobs\?cursor=[^"]+)">Older jobs', first)
    assert older
    second = html(operator.get(older.group(1).replace("&amp;", "&")))
    assert detail_links(second) == set(ids[:5]) and "every 5s" not in second and "Newest" in second


def test_htmx_poll_gets_only_the_table_with_new_jobs(console: Any, tenant: str) -> None:
    operator = console(tenant=tenant)
    assert "No jobs yet" in html(operator.get("/jobs"))
    job = add_job(tenant, "pending")
    fragment = html(operator.get("/jobs", headers={"HX-Request": "true"}))
    assert "<html" not in fragment and job in detail_links(fragment) and 'class="status status-pending"' in fragment
    db.session.get(JobExecution, job).status = "completed"
    db.session.commit()
    assert "status-completed" in html(operator.get("/jobs", headers={"HX-Request": "true"}))


# --- bulk actions --------------------------------------------------------------------------


def test_retry_selected_retries_and_audits_one_row(console: Any, tenant: str, recording_publisher: list[Any]) -> None:
    a, b = add_job(tenant, "failed"), add_job(tenant, "cancelled", minutes=1)
    done = add_job(tenant, "completed", minutes=2)
    operator = console(tenant=tenant)
    response = operator.post(
        "/jobs/bulk",
        data={"action": "retry", "ids": [a, b, done], "back": "/jobs?status=failed", "reason": "deploy fixed"},
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/jobs?status=failed")
    assert {job.retry_of for job in recording_publisher} == {a, b}
    assert "Retried 2, skipped 1." in html(operator.get("/jobs"))
    [entry] = audit("job.bulk_retry", tenant)
    assert entry.after["retried"] == 2 and entry.after["skipped"] == 1 and entry.reason == "deploy fixed"
    assert set(entry.before["ids"]) == {a, b, done}


def test_cancel_selected_cancels_live_jobs(console: Any, tenant: str, twins: Any) -> None:
    pending, done = add_job(tenant, "pending"), add_job(tenant, "completed", minutes=1)
    operator = console(tenant=tenant)
    operator.post("/jobs/bulk", data={"action": "cancel", "ids": [pending, done]})
    db.session.expire_all()
    assert db.session.get(JobExecution, pending).status == "cancelled"
    assert twins.canceller.marked == {pending}  # a mark for workers, then one revoke broadcast
    assert twins.workers.sent == [("revoke", {"job_ids": [pending], "terminate": True})]
    assert db.session.get(JobExecution, done).status == "completed"
    assert "Cancelled 1, skipped 1." in html(operator.get("/jobs"))
    assert audit("job.bulk_cancel", tenant)[0].after["cancelled"] == 1


def test_bulk_with_nothing_selected_changes_nothing(console: Any, tenant: str) -> None:
    operator = console(tenant=tenant)
    operator.post("/jobs/bulk", data={"action": "retry"})
    assert "select at least one job" in html(operator.get("/jobs"))
    assert audit("job.bulk_retry", tenant) == []
    operator.post("/jobs/bulk", data={"action": "explode", "ids": ["x"]})
    assert "unknown bulk action" in html(operator.get("/jobs"))


def test_retry_all_matching_previews_the_count_then_starts_a_bulk_job(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    failed = {add_job(tenant, "failed", minutes=n, queue="mail") for n in range(3)}
    add_job(tenant, "failed", minutes=4, queue="reports")
    add_job(tenant, "completed", minutes=5, queue="mail")
    operator = console(tenant=tenant)
    page = html(operator.get("/jobs?queue=mail"))
    link = re.search(r'href="(/jobs/bulk/preview\?action=retry[^"]*)"', page)
    assert link and "queue=mail" in link.group(1)
    preview = html(operator.get(link.group(1).replace("&amp;", "&")))
    assert re.search(r'id="preview-count">3<', preview) and "failed, cancelled" in preview
    assert all(job_id in preview for job_id in failed)  # the sample of ids
    assert recording_publisher == []  # a preview changes nothing
    response = operator.post("/jobs/bulk/matching", data={"action": "retry", "queue": "mail", "reason": "r"})
    [bulk] = recording_publisher
    assert bulk.job_class == "celeriac.bulk" and bulk.tenant_id == tenant
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/jobs/{bulk.job_id}")
    [entry] = audit("job.bulk_requested", tenant)
    assert entry.target_id == bulk.job_id and entry.reason == "r"
    assert entry.before["filter"] == {"queue": "mail", "system": False}  # the list hides system jobs
    # What the bulk job then does (tasks/bulk.py; with a real worker in tests/integration/test_bulk_jobs.py).
    row = db.session.get(JobExecution, bulk.job_id)
    request = bulk_jobs.signed_request(row.payload, tenant, app_settings().secret_key)
    used = backends()
    reports: list[tuple[int, int]] = []
    outcome = bulk_jobs.run(
        db.session,
        request,
        bulk_jobs.Backends(used.registry, used.publisher, used.canceller, app_settings()),
        lambda done, total: reports.append((done, total)),
        lambda: False,
    )
    assert outcome.done == 3 and reports == [(0, 3), (3, 3)]
    assert {job.retry_of for job in recording_publisher[1:]} == failed
    again = html(operator.get("/jobs/bulk/preview?action=retry&queue=mail"))
    assert "nothing to retry" in again


def test_cancel_all_matching_with_a_bad_filter_does_nothing(console: Any, tenant: str) -> None:
    pending = add_job(tenant, "pending")
    operator = console(tenant=tenant)
    operator.post("/jobs/bulk/matching", data={"action": "cancel", "from": "someday"})
    db.session.expire_all()
    assert db.session.get(JobExecution, pending).status == "pending"
    assert "fix the filter first" in html(operator.get("/jobs"))
    # A filter a bulk job does not take (an id prefix) still runs within the request.
    operator.post("/jobs/bulk/matching", data={"action": "cancel", "status": "pending", "id": pending[:8]})
    db.session.expire_all()
    assert db.session.get(JobExecution, pending).status == "cancelled"


# --- job detail ----------------------------------------------------------------------------


def test_detail_shows_payload_timeline_timings_and_links(console: Any, tenant: str) -> None:
    from datetime import timedelta

    parent = add_job(tenant, "failed", error_message="first try broke")
    job = add_job(
        tenant,
        "failed",
        minutes=1,
        retry_of=parent,
        payload={"order": 42},
        attempts=2,
        max_attempts=2,
        worker_id="celery@box",
        started_at=T0 + timedelta(minutes=1, seconds=3),
        failed_at=T0 + timedelta(minutes=1, seconds=5),
        execution_time_ms=1500,
        memory_usage_mb=48.5,
        error_message="card declined",
        exception_type="PaymentError",
        exception_trace="Traceback (most recent call last):\nPaymentError: card declined",
        batch_id="b-1",
        chain_id="c-1",
        schedule_id="s-1",
        tags=["billing"],
    )
    db.session.add(
        JobAttempt(
            execution_id=job,
            attempt_key=f"{job[:20]}-1",
            number=1,
            status="retrying",
            worker_id="celery@box",
            started_at=T0 + timedelta(minutes=1, seconds=3),
            finished_at=T0 + timedelta(minutes=1, seconds=4),
            runtime_ms=900,
            error_message="timeout",
        )
    )
    db.session.commit()
    retry = add_job(tenant, "pending", minutes=2, retry_of=job)
    page = html(console(role="viewer", tenant=tenant).get(f"/jobs/{job}"))
    assert "&#34;order&#34;: 42" in page or '"order": 42' in page
    for text in ("PaymentError", "card declined", "Traceback", "celery@box", "1.5 s", "48.5 MB", "3.0 s"):
        assert text in page, text
    assert "Attempt 1 failed, will retry" in page and "Retried as a new job" in page
    for href in ("/batches/b-1", "/chains/c-1", "/schedules/s-1", f"/jobs/{parent}", f"/jobs/{retry}"):
        assert f'href="{href}"' in page, href
    assert "every 3s" not in page  # a failed job does not change: no polling


def test_encrypted_payload_is_never_shown_nor_editable(console: Any, tenant: str) -> None:
    job = add_job(tenant, "failed", payload={"__celeriac_encrypted__": "gAAAAsecret"}, encrypted=True, result="x")
    page = html(console(tenant=tenant).get(f"/jobs/{job}"))
    assert "[encrypted]" in page and "gAAAAsecret" not in page
    assert "Retry with edited payload" not in page


def test_status_section_polls_until_the_job_ends(console: Any, tenant: str) -> None:
    job = add_job(tenant, "processing")
    operator = console(tenant=tenant)
    fragment = html(operator.get(f"/jobs/{job}", headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith("{#") is False and 'id="job-status"' in fragment
    assert 'hx-trigger="every 3s"' in fragment and "<html" not in fragment
    db.session.get(JobExecution, job).status = "completed"
    db.session.commit()
    done = html(operator.get(f"/jobs/{job}", headers={"HX-Request": "true"}))
    assert "status-completed" in done and "every 3s" not in done


def test_retry_from_detail_redirects_to_the_new_job_and_audits(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    failed = add_job(tenant, "failed")
    operator = console(tenant=tenant)
    response = operator.post(f"/jobs/{failed}/retry", data={"reason": "flaky network"})
    [sent] = recording_publisher
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/jobs/{sent.job_id}")
    assert "Retried as job" in html(operator.get(f"/jobs/{sent.job_id}"))
    [entry] = audit("job.retry", tenant)
    assert entry.target_id == failed and entry.after == {"retry_id": sent.job_id} and entry.reason == "flaky network"
    done = add_job(tenant, "completed")
    operator.post(f"/jobs/{done}/retry")
    assert "Not retried" in html(operator.get(f"/jobs/{done}")) and len(recording_publisher) == 1


def test_cancel_from_detail(console: Any, tenant: str, twins: Any) -> None:
    pending = add_job(tenant, "pending")
    operator = console(tenant=tenant)
    assert operator.post(f"/jobs/{pending}/cancel").status_code == 302
    db.session.expire_all()
    assert db.session.get(JobExecution, pending).status == "cancelled"
    assert twins.canceller.revoked == [(pending, True)]  # the detail page revokes at once, not per chunk
    assert twins.canceller.announced == [(pending, "cancelled by request")]
    assert "Job cancelled." in html(operator.get(f"/jobs/{pending}"))
    [entry] = audit("job.cancel", tenant)
    assert entry.before == {"status": "pending"} and entry.after == {"status": "cancelled"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object"), ('"text"', "must be a JSON object")],
)
def test_retry_with_invalid_edited_payload_is_a_form_error(
    console: Any, tenant: str, recording_publisher: list[Any], payload: str, message: str
) -> None:
    failed = add_job(tenant, "failed")
    response = console(tenant=tenant).post(f"/jobs/{failed}/retry-edited", data={"payload": payload})
    assert response.status_code == 422
    page = html(response)
    assert message in page and 'role="alert"' in page
    assert recording_publisher == [] and audit("job.retry_edited", tenant) == []


def test_retry_with_edited_payload_runs_a_new_job_with_it(
    console: Any, tenant: str, recording_publisher: list[Any]
) -> None:
    failed = add_job(tenant, "failed", payload={"value": "bad"}, tags=["t1"])
    operator = console(tenant=tenant)
    form = html(operator.get(f"/jobs/{failed}"))
    assert "Retry with edited payload" in form and '"value": "bad"' in form
    response = operator.post(f"/jobs/{failed}/retry-edited", data={"payload": '{"value": "good"}'})
    [sent] = recording_publisher
    assert response.headers["Location"].endswith(f"/jobs/{sent.job_id}")
    new = db.session.get(JobExecution, sent.job_id)
    assert new.payload == {"value": "good"} and new.retry_of == failed and new.tags == ["t1"]
    assert audit("job.retry_edited", tenant)[0].after == {"retry_id": sent.job_id}


def test_status_tabs_count_an_unfiltered_list_only(console: Any, tenant: str) -> None:
    add_job(tenant, "failed")
    add_job(tenant, "failed", minutes=1)
    add_job(tenant, "pending", minutes=2)
    operator = console(role="viewer", tenant=tenant)
    page = html(operator.get("/jobs"))
    assert re.search(r'failed\s*<span class="tab-count status-failed">2</span>', page)
    assert re.search(r'pending\s*<span class="tab-count status-pending">1</span>', page)
    assert 'class="tab-count' not in html(operator.get("/jobs?queue=default"))
    assert re.search(r'href="/jobs\?status=failed&amp;queue=default"', html(operator.get("/jobs?queue=default")))


def test_list_shows_payloads_but_not_encrypted_ones_and_filters_by_failure_group(console: Any, tenant: str) -> None:
    grouped = add_job(tenant, "failed", fingerprint="fp-console", payload={"order": 42})
    sealed = add_job(tenant, "failed", minutes=1, payload={"__celeriac_encrypted__": "gAAAAtoken"}, encrypted=True)
    operator = console(role="viewer", tenant=tenant)
    page = html(operator.get("/jobs"))
    assert "order" in page and "42" in page and "gAAAAtoken" not in page and "[encrypted]" in page
    assert detail_links(html(operator.get("/jobs?fingerprint=fp-console"))) == {grouped}
    assert sealed not in detail_links(html(operator.get("/jobs?fingerprint=fp-console")))


def test_status_tabs_leave_out_celeriacs_own_jobs_and_keep_the_cap_right(
    console: Any, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.services import job_search

    monkeypatch.setattr(job_search, "COUNT_CAP", 3)
    for n in range(3):
        add_job(tenant, "completed", minutes=n)
    for n in range(2):  # hourly purge runs: counted apart and taken off, never shown
        add_job(tenant, "completed", minutes=10 + n, job_class="celeriac.maintenance.purge_history")
    add_job(tenant, "failed", minutes=20, job_class="celeriac.maintenance.purge_history")
    for n in range(4):
        add_job(tenant, "failed", minutes=30 + n)
    counts = job_search.status_counts(db.session, tenant, system=False)
    # 3 of the tenant's own completed jobs (not "3+" because 5 rows exist); 4 failed is past the cap.
    assert (counts["completed"], counts["failed"], counts["pending"]) == (3, 4, 0)
    assert job_search.status_counts(db.session, tenant)["completed"] == 4  # system shown: 5, capped at 3 + 1
    page = html(console(role="viewer", tenant=tenant).get("/jobs"))
    assert re.search(r'completed\s*<span class="tab-count status-completed">3</span>', page)
    assert re.search(r'failed\s*<span class="tab-count status-failed">3\+</span>', page)
