"""Plain Celery, unchanged, on the session's real worker: `.delay()`, `group`, `chord` and
`chain` as a Celery user writes them, and what `GET /api/jobs/{id}` and the console then
show: attempts against the task's own retry limit, group members, the chord callback's
relation to its header, Celery's parent and root."""

from __future__ import annotations

from typing import Any

import pytest
from celery import chain, chord, group

from tests.conftest import wait_for
from tests.sample_jobs import plain_autoretry, plain_retry_forever, plain_self_retry, plain_total

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: Plain Celery producers file their jobs under the default tenant.
DEFAULT = "default"


def add(x: int, y: int | None = None) -> Any:
    from app.celery_app import celery_app

    return celery_app.signature("demo.add", args=(x,) if y is None else (x, y))


def total() -> Any:
    return plain_total.s()


def settled(client: Any, headers: dict[str, str], ids: list[str], status: str = "completed") -> list[dict[str, Any]]:
    """The jobs' API answers once every one of them reached `status`."""

    def answers() -> list[dict[str, Any]] | None:
        found = [client.get(f"/api/jobs/{job_id}", headers=headers) for job_id in ids]
        if any(answer.status_code != 200 for answer in found):
            return None
        jobs = [answer.get_json() for answer in found]
        return jobs if all(job["status"] == status for job in jobs) else None

    result: list[dict[str, Any]] = wait_for(answers, timeout=60, what=f"jobs {ids} {status}")
    return result


def test_autoretry_for_with_max_retries_3_shows_4_attempts_of_4(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    sent = plain_autoretry.delay(key=unique)
    (job,) = settled(client, auth("viewer", DEFAULT), [sent.id], "failed")
    assert (job["attempts"], job["max_attempts"]) == (4, 4)
    assert job["exception_type"] == "PlainFlaky"


def test_self_retry_counts_against_max_retries_and_a_per_call_limit(
    stack: Any, client: Any, auth: Any, unique: str
) -> None:
    recovered = plain_self_retry.delay(key=f"{unique}-ok", failures=1)
    cut_short = plain_self_retry.delay(key=f"{unique}-short", max_retries=1)
    headers = auth("viewer", DEFAULT)
    (done,) = settled(client, headers, [recovered.id])
    assert (done["attempts"], done["max_attempts"]) == (2, 3)  # max_retries=2
    (failed,) = settled(client, headers, [cut_short.id], "failed")
    assert (failed["attempts"], failed["max_attempts"]) == (2, 2)  # self.retry(max_retries=1)


def test_max_retries_none_shows_no_limit(stack: Any, client: Any, auth: Any, console: Any, unique: str) -> None:
    sent = plain_retry_forever.delay(key=unique, failures=2)
    (job,) = settled(client, auth("viewer", DEFAULT), [sent.id])
    assert (job["attempts"], job["max_attempts"]) == (3, 0)
    html = console(role="viewer", tenant=DEFAULT).get(f"/jobs/{sent.id}").get_data(as_text=True)
    assert "no limit" in html


def test_group_members_carry_the_group_and_nothing_else_does(stack: Any, client: Any, auth: Any) -> None:
    result = group(add(1, 2), add(3, 4)).apply_async()
    members = settled(client, auth("viewer", DEFAULT), [child.id for child in result.results])
    assert [m["group_id"] for m in members] == [result.id, result.id]
    assert all(m["parent_id"] is None and m["root_id"] is None for m in members)  # sent from outside a task
    assert all(m["max_attempts"] == 4 for m in members)  # demo.add: Celery's default max_retries=3


def test_a_chord_callback_names_its_header_not_one_header_task(
    stack: Any, client: Any, auth: Any, console: Any
) -> None:
    result = chord([add(1, 1), add(2, 2), add(3, 3)])(total())
    header_id = result.parent.id
    header_ids = [child.id for child in result.parent.results]
    headers = auth("viewer", DEFAULT)
    *members, callback = settled(client, headers, [*header_ids, result.id])
    assert callback["result"] == 12
    assert {m["group_id"] for m in members} == {header_id}
    assert (callback["parent_id"], callback["root_id"], callback["group_id"]) == (header_id, header_id, None)
    viewer = console(role="viewer", tenant=DEFAULT)
    page = viewer.get(f"/groups/{header_id}").get_data(as_text=True)
    assert "3 of 3 completed" in page and f'href="/jobs/{result.id}"' in page
    assert all(f"member-{job_id}" in page for job_id in header_ids)
    assert f"member-{result.id}" not in page  # the callback is not a member
    # The callback's page links its parent, which leads to the header's group page.
    job_page = viewer.get(f"/jobs/{result.id}").get_data(as_text=True)
    assert f'href="/canvas/{header_id}"' in job_page
    assert viewer.get(f"/canvas/{header_id}").headers["Location"].endswith(f"/groups/{header_id}")


def test_a_chains_steps_name_the_step_before_and_the_first(stack: Any, client: Any, auth: Any, console: Any) -> None:
    last = chain(add(1, 2), add(10), add(100)).apply_async()
    second = last.parent
    first = second.parent
    jobs = settled(client, auth("viewer", DEFAULT), [first.id, second.id, last.id])
    assert jobs[2]["result"] == 113
    assert [(j["parent_id"], j["root_id"]) for j in jobs] == [(None, None), (first.id, first.id), (second.id, first.id)]
    assert all(j["group_id"] is None and j["schedule_id"] is None for j in jobs)
    viewer = console(role="viewer", tenant=DEFAULT)
    assert viewer.get(f"/canvas/{second.id}").headers["Location"].endswith(f"/jobs/{second.id}")
    assert viewer.get("/canvas/no-such-id").status_code == 404


def test_a_group_inside_a_chain_names_the_step_that_sent_it(stack: Any, client: Any, auth: Any, console: Any) -> None:
    # Celery turns a group followed by a task into a chord.
    callback = chain(add(1, 2), group(add(10), add(20)), total()).apply_async()
    header = callback.parent
    first = header.parent
    ids = [first.id, *(child.id for child in header.results), callback.id]
    start, *members, end = settled(client, auth("viewer", DEFAULT), ids)
    assert end["result"] == 36 and start["parent_id"] is None
    assert all((m["group_id"], m["parent_id"], m["root_id"]) == (header.id, first.id, first.id) for m in members)
    assert (end["parent_id"], end["root_id"], end["group_id"]) == (header.id, first.id, None)
    page = console(role="viewer", tenant=DEFAULT).get(f"/groups/{header.id}").get_data(as_text=True)
    assert f'href="/canvas/{first.id}"' in page  # sent by the chain's first step
