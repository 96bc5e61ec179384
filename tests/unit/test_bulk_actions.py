"""Bulk retry / cancel and the job search behind them (app.services.bulk_actions, job_search).

On in-memory twins (app.backends.twins): no Redis, no broker.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.backends.current import backends
from app.backends.twins import MemoryCanceller
from app.db import db
from app.errors import ValidationError
from app.models import JobExecution
from app.services import bulk_actions, job_search
from app.services.deferred_revokes import DeferredRevokes
from tests.job_rows import T0, add_job

pytestmark = pytest.mark.usefixtures("twins", "no_redis")


@pytest.fixture()
def tenant(app: Any, unique: str) -> str:
    return f"bulk-{unique}"


@pytest.fixture()
def canceller(twins: Any) -> MemoryCanceller:
    canceller: MemoryCanceller = twins.canceller
    return canceller


def retry_kwargs() -> dict[str, Any]:
    from app.config import get_settings

    used = backends()
    return {"registry": used.registry, "publisher": used.publisher, "settings": get_settings()}


def ids_of(page: job_search.Page) -> list[str]:
    return [r.id for r in page.rows]


def test_search_filters_combine_and_pages_are_newest_first(tenant: str) -> None:
    jobs = [add_job(tenant, "completed", minutes=n, queue="mail", tags=["vip"] if n % 2 else None) for n in range(5)]
    add_job(tenant, "failed", minutes=10, queue="mail")
    add_job(f"{tenant}-other", "completed", minutes=3, queue="mail", tags=["vip"])
    q = job_search.JobQuery(tenant_id=tenant, status="completed", queue="mail")
    first = job_search.search(db.session, q, limit=2)
    assert ids_of(first) == [jobs[4], jobs[3]] and first.next_cursor
    second = job_search.search(db.session, q, limit=2, cursor=first.next_cursor)
    third = job_search.search(db.session, q, limit=2, cursor=second.next_cursor)
    assert ids_of(second) == [jobs[2], jobs[1]] and ids_of(third) == [jobs[0]] and third.next_cursor is None
    tagged = job_search.search(db.session, job_search.JobQuery(tenant_id=tenant, tag="vip"))
    assert ids_of(tagged) == [jobs[3], jobs[1]]
    window = job_search.JobQuery(
        tenant_id=tenant, created_from=T0 + timedelta(minutes=1), created_to=T0 + timedelta(minutes=2)
    )
    assert ids_of(job_search.search(db.session, window)) == [jobs[2], jobs[1]]
    by_prefix = job_search.search(db.session, job_search.JobQuery(tenant_id=tenant, job_id=jobs[2][:8]))
    assert ids_of(by_prefix) == [jobs[2]]
    by_id = job_search.search(db.session, job_search.JobQuery(tenant_id=tenant, job_id=jobs[2]))
    assert ids_of(by_id) == [jobs[2]]


def test_payload_search_finds_text_but_never_inside_encrypted_payloads(tenant: str) -> None:
    plain = add_job(tenant, payload={"email": "Ada@Example.com", "n": 1})
    add_job(tenant, payload={"email": "bob@example.com"})
    add_job(tenant, payload={"__celeriac_encrypted__": "gAAAAAda@example.com"})
    add_job(tenant, payload={"email": "ada@example.com"}, encrypted=True)
    found = job_search.search(db.session, job_search.JobQuery(tenant_id=tenant, text="ada@example"))
    assert ids_of(found) == [plain]
    # Literal LIKE characters match only themselves.
    assert ids_of(job_search.search(db.session, job_search.JobQuery(tenant_id=tenant, text="%"))) == []


def test_payload_search_reads_a_bounded_window_and_offers_to_go_on(
    tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_search, "SCAN_WINDOW", 3)
    old = add_job(tenant, minutes=0, payload={"needle": True})
    for n in range(1, 6):
        add_job(tenant, minutes=n)
    q = job_search.JobQuery(tenant_id=tenant, text="needle")
    first = job_search.search(db.session, q)
    assert first.rows == [] and first.window_ended and first.next_cursor
    second = job_search.search(db.session, q, cursor=first.next_cursor)
    assert ids_of(second) == [old] and second.next_cursor is None


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"status": "exploded"}, "status"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-11-02T00:00", "to": "2026-11-01T00:00"}, "to"),
        ({"id": "ab"}, "id"),
        ({"q": "x" * 201}, "q"),
    ],
)
def test_invalid_filter_values_name_the_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(job_search.FilterErrors) as caught:
        job_search.parse_query(args, "acme")
    assert field in caught.value.errors


def test_parse_fixes_everyone_but_a_superadmin_to_their_tenant() -> None:
    assert job_search.parse_query({"tenant": "globex"}, "acme").tenant_id == "acme"
    assert job_search.parse_query({"tenant": "globex"}, None).tenant_id == "globex"
    assert job_search.parse_query({}, None).tenant_id is None
    moment = job_search.parse_query({"from": "2026-11-23T14:30"}, "acme").created_from
    assert moment == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


def test_retry_matching_retries_only_failed_or_cancelled_once(tenant: str, recording_publisher: list[Any]) -> None:
    failed = {add_job(tenant, "failed", minutes=n) for n in range(3)}
    cancelled = add_job(tenant, "cancelled", minutes=4)
    add_job(tenant, "completed", minutes=5)
    add_job(tenant, "pending", minutes=6)
    theirs = add_job(f"{tenant}-x", "failed", minutes=1)
    q = job_search.JobQuery(tenant_id=tenant)
    assert bulk_actions.preview(db.session, q, "retry").count == 4
    outcome = bulk_actions.retry_matching(db.session, q, **retry_kwargs())
    assert (outcome.done, outcome.skipped, outcome.truncated) == (4, 0, False)
    assert {job.retry_of for job in recording_publisher} == failed | {cancelled}
    assert theirs not in {job.retry_of for job in recording_publisher}
    again = bulk_actions.retry_matching(db.session, q, **retry_kwargs())
    assert again.done == 0 and bulk_actions.preview(db.session, q, "retry").count == 0


def test_retry_matching_stops_at_the_cap_and_says_more_are_left(
    tenant: str, recording_publisher: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_actions, "CHUNK", 2)
    for n in range(5):
        add_job(tenant, "failed", minutes=n)
    q = job_search.JobQuery(tenant_id=tenant)
    first = bulk_actions.retry_matching(db.session, q, limit=3, **retry_kwargs())
    assert (first.done, first.truncated) == (3, True)
    assert "run it again" in first.message()
    rest = bulk_actions.retry_matching(db.session, q, limit=3, **retry_kwargs())
    assert (rest.done, rest.truncated) == (2, False)
    assert len(recording_publisher) == 5


def test_retry_selected_skips_what_cannot_be_retried(tenant: str, recording_publisher: list[Any]) -> None:
    failed = add_job(tenant, "failed")
    completed = add_job(tenant, "completed")
    theirs = add_job(f"{tenant}-x", "failed")
    outcome = bulk_actions.retry_selected(
        db.session, [failed, completed, theirs, "no-such-job"], tenant, **retry_kwargs()
    )
    assert (outcome.done, outcome.skipped) == (1, 3)
    assert [job.retry_of for job in recording_publisher] == [failed]
    assert bulk_actions.retry_selected(db.session, [failed], tenant, **retry_kwargs()).skipped == 1
    with pytest.raises(ValidationError):
        bulk_actions.retry_selected(db.session, [], tenant, **retry_kwargs())


def test_cancel_matching_cancels_live_jobs_and_marks_them_for_workers(
    tenant: str, canceller: MemoryCanceller
) -> None:
    live = {add_job(tenant, status, minutes=n) for n, status in enumerate(["pending", "processing", "retrying"])}
    done = add_job(tenant, "completed", minutes=5)
    sent: list[list[str]] = []
    deferred = DeferredRevokes(canceller, sent.append)
    q = job_search.JobQuery(tenant_id=tenant)
    assert bulk_actions.preview(db.session, q, "cancel").count == 3
    outcome = bulk_actions.cancel_matching(db.session, q, canceller=deferred)
    assert (outcome.done, outcome.skipped) == (3, 0)
    db.session.expire_all()
    statuses = dict(
        db.session.execute(select(JobExecution.id, JobExecution.status).where(JobExecution.tenant_id == tenant)).all()
    )
    assert {statuses[i] for i in live} == {"cancelled"} and statuses[done] == "completed"
    assert canceller.marked == live and {job_id for job_id, _ in canceller.announced} == live
    assert len(sent) == 1 and set(sent[0]) == live  # one revoke broadcast for the chunk


def test_cancel_selected_skips_finished_and_foreign_jobs(tenant: str, canceller: MemoryCanceller) -> None:
    pending = add_job(tenant, "pending")
    failed = add_job(tenant, "failed")
    theirs = add_job(f"{tenant}-x", "pending")
    outcome = bulk_actions.cancel_selected(db.session, [pending, failed, theirs], tenant, canceller=canceller)
    assert (outcome.done, outcome.skipped) == (1, 2)
    db.session.expire_all()
    assert db.session.get(JobExecution, theirs).status == "pending"


def test_retry_failure_group_retries_that_fingerprint_of_that_tenant(
    tenant: str, recording_publisher: list[Any]
) -> None:
    mine = {add_job(tenant, "failed", minutes=n, fingerprint="fp-a") for n in range(2)}
    add_job(tenant, "failed", fingerprint="fp-b")
    add_job(f"{tenant}-x", "failed", fingerprint="fp-a")
    assert bulk_actions.count_group_retryable(db.session, tenant, "fp-a") == 2
    outcome = bulk_actions.retry_failure_group(db.session, tenant, "fp-a", **retry_kwargs())
    assert outcome.done == 2 and {job.retry_of for job in recording_publisher} == mine
    assert bulk_actions.count_group_retryable(db.session, tenant, "fp-a") == 0
