"""Celery groups and chords recorded with their group id, and the queue page's order, with
real workers: what the console shows is what Celery sent and what a worker takes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from celery import chord, group

from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Plain Celery producers file their jobs under the default tenant.
DEFAULT = "default"


def add(x: int, y: int, immutable: bool = False) -> Any:
    from app.celery_app import celery_app

    return celery_app.signature("demo.add", args=(x, y), immutable=immutable)


def job(client: Any, headers: dict[str, str], job_id: str) -> dict[str, Any] | None:
    answer = client.get(f"/api/jobs/{job_id}", headers=headers)
    return answer.get_json() if answer.status_code == 200 else None


def wait_completed(client: Any, headers: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
    def done() -> list[dict[str, Any]] | None:
        found = [job(client, headers, job_id) for job_id in ids]
        return found if all(j and j["status"] == "completed" for j in found) else None  # type: ignore[misc]

    result: list[dict[str, Any]] = wait_for(done, timeout=60, what=f"jobs {ids} completed")
    return result


def test_a_celery_group_is_recorded_with_its_group_id_and_shown_on_its_page(
    stack: Any, client: Any, auth: Any, console: Any
) -> None:
    result = group(add(1, 2), add(3, 4), add(5, 6)).apply_async()
    ids = [child.id for child in result.results]
    headers = auth("viewer", DEFAULT)
    members = wait_completed(client, headers, ids)
    assert {m["group_id"] for m in members} == {result.id}
    viewer = console(role="viewer", tenant=DEFAULT)
    html = viewer.get(f"/groups/{result.id}").get_data(as_text=True)
    assert "3 of 3 completed" in html and all(job_id in html for job_id in ids)
    assert f'href="/groups/{result.id}"' in viewer.get(f"/jobs/{ids[0]}").get_data(as_text=True)


def test_a_chords_header_shares_a_group_and_its_page_links_the_callback(
    stack: Any, client: Any, auth: Any, console: Any
) -> None:
    result = chord([add(1, 1), add(2, 2)])(add(10, 20, immutable=True))
    header_ids = [child.id for child in result.parent.results]
    headers = auth("viewer", DEFAULT)
    members = wait_completed(client, headers, [*header_ids, result.id])
    group_id = result.parent.id
    assert {m["group_id"] for m in members[:2]} == {group_id}
    assert members[2]["result"] == 30
    html = console(role="viewer", tenant=DEFAULT).get(f"/groups/{group_id}").get_data(as_text=True)
    assert "Chord" in html and "2 of 2 completed" in html
    assert f'href="/jobs/{result.id}"' in html  # the callback, recorded and linked


def test_queue_page_order_is_the_order_a_worker_takes_the_jobs(
    client: Any, auth: Any, console: Any, recorder: Any, unique: str, tmp_path: Path
) -> None:
    queue, tenant = f"order-{unique}", f"order-{unique}"
    headers = auth("operator", tenant)
    ids = []
    for value, priority in enumerate([2, 9, 5, 9, 0]):
        options = {"queue": queue, "priority": priority}
        body = {"job_class": "demo.echo", "payload": {"value": value}, "options": options}
        answer = client.post("/api/jobs/dispatch", json=body, headers=headers)
        assert answer.status_code == 201
        ids.append(answer.get_json()["id"])
    # No worker consumes the queue yet: the page shows the five messages waiting.
    html = console(role="viewer", tenant=tenant).get(f"/queues/{queue}").get_data(as_text=True)
    listed = [i for i in re.findall(r'href="/jobs/([0-9a-f-]{36})"', html) if i in ids]
    assert listed == [ids[1], ids[3], ids[2], ids[0], ids[4]]
    worker = WorkerProcess(tmp_path / "worker.log", queues=queue, concurrency=1, hostname=f"order-{unique}@%h")
    try:
        ran = wait_completed(client, headers, ids)
    finally:
        worker.stop()
    taken = [j["id"] for j in sorted(ran, key=lambda j: j["started_at"])]
    assert taken == listed
