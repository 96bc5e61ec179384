"""Console batches and chains: lists with progress, details, cancel, access matrix, cheap pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, func, select

from app.composition import batch_pages
from app.db import db
from app.models import AuditLog, JobBatch, JobExecution


def echo(value: Any = 1) -> dict[str, Any]:
    return {"job_class": "demo.echo", "payload": {"value": value}}


@pytest.fixture()
def create(client: Any, auth: Any, recording_publisher: list[Any]) -> Any:
    """Dispatch through the API; the recording publisher keeps every job pending."""

    def make(kind: str, tenant: str, **body: Any) -> dict[str, Any]:
        response = client.post(f"/api/{kind}", json=body, headers=auth("operator", tenant))
        assert response.status_code == 201, response.get_data(as_text=True)
        created: dict[str, Any] = response.get_json()
        return created

    return make


def audits(action: str, target: str) -> int:
    db.session.expire_all()
    query = select(func.count()).select_from(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target)
    return int(db.session.scalar(query) or 0)


def test_batch_list_shows_progress_counts_and_refreshes_while_running(console: Any, create: Any, unique: str) -> None:
    batch = create("batches", unique, name="Nightly import", jobs=[echo(1), echo(2), echo(3)])
    page = console(role="viewer", tenant=unique).get("/batches").get_data(as_text=True)
    assert "Nightly import" in page and f"/batches/{batch['id']}" in page
    assert re.search(r'<progress value="0" max="100"', page)
    assert 'hx-trigger="every 3s"' in page  # a pending batch keeps the page live
    assert ">pending</span>" in page


def test_batch_detail_lists_jobs_callbacks_and_allowance(console: Any, create: Any, unique: str) -> None:
    batch = create(
        "batches", unique, name="Import", jobs=[echo(1), echo(2)], allow_failures=1, then=echo("done"), catch=echo("x")
    )
    page = console(role="viewer", tenant=unique).get(f"/batches/{batch['id']}").get_data(as_text=True)
    for job_id in batch["job_ids"]:
        assert f"/jobs/{job_id}" in page
    assert "Up to 1 failures allowed" in page and "0% processed: 0 of 2 jobs" in page
    assert page.count("waiting (not dispatched)") == 2  # then and catch are held until the batch ends
    assert "<code>finally</code>" in page and "Cancel batch" not in page  # viewers cannot cancel


def test_operator_cancels_a_batch_and_it_is_audited(console: Any, create: Any, unique: str) -> None:
    batch = create("batches", unique, jobs=[echo(1), echo(2)])
    operator = console(role="operator", tenant=unique)
    assert "Cancel batch" in operator.get(f"/batches/{batch['id']}").get_data(as_text=True)
    response = operator.post(f"/batches/{batch['id']}/cancel", data={"reason": "wrong file"})
    assert response.status_code == 302
    page = operator.get(response.headers["Location"]).get_data(as_text=True)
    assert "Batch cancelled: 2" in page and ">cancelled</span>" in page and "hx-trigger" not in page
    db.session.expire_all()
    statuses = set(db.session.scalars(select(JobExecution.status).where(JobExecution.batch_id == batch["id"])))
    assert statuses == {"cancelled"}
    assert audits("batch.cancel", batch["id"]) == 1
    again = operator.post(f"/batches/{batch['id']}/cancel")
    assert "Not cancelled" in operator.get(again.headers["Location"]).get_data(as_text=True)


def test_chain_detail_lists_steps_in_order_with_current_step(console: Any, create: Any, unique: str) -> None:
    chain = create("chains", unique, name="Pipeline", jobs=[echo(1), echo(), echo()], catch=echo("oops"))
    session = console(role="viewer", tenant=unique)
    listing = session.get("/chains").get_data(as_text=True)
    assert "Pipeline" in listing and "1 of 3" in listing and 'hx-trigger="every 3s"' in listing
    page = session.get(f"/chains/{chain['id']}").get_data(as_text=True)
    positions = [page.index(f"/jobs/{job_id}") for job_id in chain["job_ids"]]
    assert positions == sorted(positions)
    assert "Step 1 of 3" in page and 'aria-current="step"' in page and "runs if a step fails" in page


def test_operator_cancels_a_chain_and_it_is_audited(console: Any, create: Any, unique: str) -> None:
    chain = create("chains", unique, jobs=[echo(1), echo()])
    operator = console(role="operator", tenant=unique)
    assert operator.post(f"/chains/{chain['id']}/cancel").status_code == 302
    page = operator.get(f"/chains/{chain['id']}").get_data(as_text=True)
    assert ">cancelled</span>" in page and "Cancel chain" not in page
    assert audits("chain.cancel", chain["id"]) == 1


def test_access_matrix(client: Any, console: Any, create: Any, unique: str) -> None:
    batch = create("batches", unique, jobs=[echo()])
    chain = create("chains", unique, jobs=[echo()])
    pages = ("/batches", "/chains", f"/batches/{batch['id']}", f"/chains/{chain['id']}")
    for path in pages:
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    actions = (f"/batches/{batch['id']}/cancel", f"/chains/{chain['id']}/cancel")
    viewer = console(role="viewer", tenant=unique)
    operator = console(role="operator", tenant=unique)
    stranger = console(role="admin", tenant=f"other-{unique}")
    for path in actions:
        assert viewer.post(path).status_code == 403
        assert operator.post(path, csrf=False).status_code == 400
        assert stranger.post(path).status_code == 404
    for path in pages[2:]:
        assert stranger.get(path).status_code == 404
    listing = stranger.get("/batches").get_data(as_text=True) + stranger.get("/chains").get_data(as_text=True)
    assert batch["id"] not in listing and chain["id"] not in listing
    assert viewer.get(f"/chains/{batch['id']}").status_code == 404  # a batch id is not a chain
    db.session.expire_all()
    assert db.session.get(JobBatch, batch["id"]).cancelled_at is None


def test_superadmin_sees_every_tenant(console: Any, create: Any, unique: str) -> None:
    batch = create("batches", unique, jobs=[echo()])
    page = console(role="admin", tenant=None, superadmin=True).get(f"/batches/{batch['id']}")
    assert page.status_code == 200 and unique in page.get_data(as_text=True)


def test_pages_are_keyset_paginated_with_one_grouped_count_query(app: Any, create: Any, unique: str) -> None:
    ids = [create("batches", unique, name=f"b{i}", jobs=[echo(), echo()])["id"] for i in range(3)]
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        first = batch_pages.list_batches(db.session, unique, limit=2)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert [item["id"] for item in first.items] == ids[:0:-1]  # newest first
    assert len(statements) == 2 and first.next_cursor is not None
    assert all(item["counts"]["pending"] == 2 and item["total_jobs"] == 2 for item in first.items)
    second = batch_pages.list_batches(db.session, unique, cursor=first.next_cursor, limit=2)
    assert [item["id"] for item in second.items] == ids[:1] and second.next_cursor is None


def test_a_bad_cursor_is_a_readable_error(console: Any, unique: str) -> None:
    response = console(role="viewer", tenant=unique).get("/batches?cursor=%%%")
    assert response.status_code == 422 and "cursor is not valid" in response.get_data(as_text=True)
