"""The console's queue page (pending messages in the order a worker takes them) and group page.

Queue-page messages are published for real (the API's dispatch, kombu, Redis) to a queue no
worker consumes; group rows are written as the recorder writes them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from app.db import db
from app.monitoring.pending_messages import pending_messages, read_in_order
from tests.job_rows import add_job

pytestmark = pytest.mark.redis


@pytest.fixture()
def tenant(unique: str) -> str:
    return f"qp-{unique}"


@pytest.fixture()
def quiet_queue(unique: str) -> str:
    return f"qp-{unique}"


def dispatch(client: Any, headers: dict[str, str], queue: str, priority: int, value: int) -> str:
    body = {"job_class": "demo.echo", "payload": {"value": value}, "options": {"queue": queue, "priority": priority}}
    answer = client.post("/api/jobs/dispatch", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return str(answer.get_json()["id"])


def test_queue_page_lists_messages_highest_priority_first_then_oldest(
    client: Any, auth: Any, console: Any, tenant: str, quiet_queue: str
) -> None:
    headers = auth("operator", tenant)
    ids = {(p, v): dispatch(client, headers, quiet_queue, p, v) for p, v in [(3, 1), (9, 2), (5, 3), (9, 4), (0, 5)]}
    expected = [ids[(9, 2)], ids[(9, 4)], ids[(5, 3)], ids[(3, 1)], ids[(0, 5)]]
    html = console(role="viewer", tenant=tenant).get(f"/queues/{quiet_queue}").get_data(as_text=True)
    positions = [html.index(f'href="/jobs/{job_id}"') for job_id in expected]
    assert positions == sorted(positions)
    assert "5 messages in the broker" in html
    assert 'id="message-1"' in html and 'id="message-5"' in html


def test_a_tenant_sees_only_its_own_messages_and_a_superadmin_all(
    client: Any, auth: Any, console: Any, tenant: str, quiet_queue: str
) -> None:
    mine = dispatch(client, auth("operator", tenant), quiet_queue, 5, 1)
    theirs = dispatch(client, auth("operator", f"{tenant}-other"), quiet_queue, 9, 2)
    html = console(role="viewer", tenant=tenant).get(f"/queues/{quiet_queue}").get_data(as_text=True)
    assert mine in html and theirs not in html
    assert 'id="message-2"' in html  # its place counts the other tenant's message ahead of it
    everyone = console(role="admin", tenant=None, superadmin=True).get(f"/queues/{quiet_queue}")
    assert mine in everyone.get_data(as_text=True) and theirs in everyone.get_data(as_text=True)


def test_pages_follow_each_other_without_gaps(
    client: Any, auth: Any, tenant: str, quiet_queue: str, redis_client: Any
) -> None:
    headers = auth("operator", tenant)
    ids = [dispatch(client, headers, quiet_queue, 5, n) for n in range(5)]
    seen: list[str | None] = []
    offset: int | None = 0
    while offset is not None:
        page = pending_messages(db.session, redis_client, quiet_queue, tenant, offset=offset, limit=2)
        seen += [m.job_id for m in page.messages]
        offset = page.next_offset
    assert seen == ids  # one priority: first published, first taken
    assert [place for place, _ in read_in_order(redis_client, quiet_queue, 3, 10)] == [3, 4]


def test_queue_page_link_from_queues_and_bad_names(console: Any, tenant: str, quiet_queue: str) -> None:
    add_job(tenant, "pending", queue=quiet_queue)
    viewer = console(role="viewer", tenant=tenant)
    assert f'href="/queues/{quiet_queue}"' in viewer.get("/queues").get_data(as_text=True)
    empty = viewer.get(f"/queues/{quiet_queue}?offset=-4")
    assert empty.status_code == 200 and "Nothing is waiting in this queue" in empty.get_data(as_text=True)
    assert viewer.get("/queues/bad%20name!").status_code == 404
    assert viewer.get(f"/queues/{'x' * 101}").status_code == 404


def _group(tenant: str, statuses: list[str], callback_id: str | None = None) -> tuple[str, list[str]]:
    group_id = str(uuid.uuid4())
    links = {"links": {"chord": {"task": "demo.add", "options": {"task_id": callback_id}}}} if callback_id else None
    ids = [add_job(tenant, status, minutes=n, group_id=group_id, message=links) for n, status in enumerate(statuses)]
    return group_id, ids


def test_group_page_shows_members_progress_and_is_linked_from_the_job_page(console: Any, tenant: str) -> None:
    group_id, ids = _group(tenant, ["completed", "completed", "failed", "processing"])
    viewer = console(role="viewer", tenant=tenant)
    html = viewer.get(f"/groups/{group_id}").get_data(as_text=True)
    assert all(job_id in html for job_id in ids)
    assert "2 of 4 completed" in html and "1 failed" in html and 'hx-trigger="every 3s"' in html
    assert f'href="/groups/{group_id}"' in viewer.get(f"/jobs/{ids[0]}").get_data(as_text=True)
    partial = viewer.get(f"/groups/{group_id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in partial and ids[0] in partial


def test_chord_page_names_its_callback_before_and_after_it_ran(console: Any, tenant: str) -> None:
    callback = str(uuid.uuid4())
    group_id, _ids = _group(tenant, ["completed", "processing"], callback_id=callback)
    viewer = console(role="viewer", tenant=tenant)
    html = viewer.get(f"/groups/{group_id}").get_data(as_text=True)
    assert "Chord" in html and "demo.add" in html and "runs when every member completed" in html
    add_job(tenant, "completed", id=callback, job_class="demo.add")
    html = viewer.get(f"/groups/{group_id}").get_data(as_text=True)
    assert f'href="/jobs/{callback}"' in html


def test_group_of_another_tenant_is_not_found(console: Any, tenant: str, client: Any, auth: Any) -> None:
    group_id, ids = _group(tenant, ["completed"])
    assert console(role="viewer", tenant=f"{tenant}-other").get(f"/groups/{group_id}").status_code == 404
    assert console(role="viewer", tenant=tenant).get("/groups/nothing-here").status_code == 404
    job = client.get(f"/api/jobs/{ids[0]}", headers=auth("viewer", tenant)).get_json()
    assert job["group_id"] == group_id
