"""Failures end to end with real workers and the recorder: groups, reports, escalation, dead letter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.config import EscalationConfig
from app.failures.escalation import Escalator
from tests.conftest import wait_for
from tests.receivers import smtp_sink, webhook_receiver

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def dispatch_fail(client: Any, headers: dict[str, str], message: str) -> str:
    body = {"job_class": "demo.fail", "payload": {"message": message}}
    response = client.post("/api/jobs/dispatch", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    job_id: str = response.get_json()["id"]
    return job_id


def wait_failed(client: Any, headers: dict[str, str], ids: list[str]) -> None:
    def all_failed() -> bool:
        return all(client.get(f"/api/jobs/{i}", headers=headers).get_json()["status"] == "failed" for i in ids)

    wait_for(all_failed, timeout=40, what="jobs to fail")


@pytest.fixture()
def receivers(stack: Any, redis_client: Any) -> Iterator[tuple[list[dict[str, Any]], list[Any]]]:
    """The running recorder escalates to a local webhook and SMTP sink for the test."""
    recorder = stack["recorder"].recorder
    with webhook_receiver() as (url, hooks), smtp_sink() as (port, mails):
        config = EscalationConfig(
            webhook_urls=(url,), smtp_host="127.0.0.1", smtp_port=port, email_to=("ops@example.com",)
        )
        previous, recorder.escalation = recorder.escalation, Escalator(config, redis_client)
        try:
            yield hooks, mails
        finally:
            recorder.escalation.stop()
            recorder.escalation = previous


def test_failures_with_varying_numbers_form_one_group_and_escalate_once(
    client: Any, auth: Any, unique: str, receivers: tuple[list[dict[str, Any]], list[Any]]
) -> None:
    hooks, mails = receivers
    headers = auth("operator", f"t-{unique}")
    orders = [dispatch_fail(client, headers, f"order {n} of customer {n * 7} failed") for n in (1, 22, 333, 4444)]
    disk = dispatch_fail(client, headers, f"disk {unique} full")
    wait_failed(client, headers, [*orders, disk])
    groups = client.get("/api/monitoring/failures?job_class=demo.fail", headers=headers).get_json()["items"]
    assert sorted(g["count"] for g in groups) == [1, 4]
    big = next(g for g in groups if g["count"] == 4)
    assert big["message"] == "RuntimeError: order <n> of customer <n> failed"
    assert big["job_classes"] == ["demo.fail"] and set(big["sample_job_ids"]) == set(orders)
    assert big["frames"][0].endswith("demo.py:handle")
    report = client.get(f"/api/jobs/{orders[2]}/failure-report", headers=headers).get_json()
    assert report["fingerprint"] == big["fingerprint"] and report["similar_failures_count"] == 3
    assert report["exception"]["message"] == "RuntimeError: order 333 of customer 2331 failed"
    assert [a["status"] for a in report["attempts"]] == ["failed"] and "Traceback" in report["traceback"]
    # One notification per fingerprint on each channel, whatever the number of failures.
    wait_for(lambda: len(hooks) >= 2 and len(mails) >= 2, what="webhook and e-mail notifications")
    texts = sorted(h["text"] for h in hooks)
    assert len(hooks) == 2 and any(disk in t for t in texts)
    assert {m["Subject"] for m in mails} == {"[celeriac] demo.fail failed: RuntimeError"}


def test_retry_all_and_clear_touch_only_the_callers_tenant(stack: Any, client: Any, auth: Any, unique: str) -> None:
    mine, theirs = auth("admin", f"t-{unique}"), auth("admin", f"o-{unique}")
    my_ids = [dispatch_fail(client, mine, f"mine {n}") for n in range(3)]
    their_ids = [dispatch_fail(client, theirs, "theirs")]
    wait_failed(client, mine, my_ids)
    wait_failed(client, theirs, their_ids)
    response = client.post("/api/admin/queue/retry", json={"queue": "default"}, headers=mine)
    assert response.get_json() == {"retried": 3, "skipped": 0}

    def retries() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = client.get("/api/jobs?status=failed&limit=200", headers=mine).get_json()["items"]
        return [job for job in items if job["id"] not in my_ids]

    # The new runs fail again (demo.fail always does), each a new execution.
    wait_for(lambda: len(retries()) == 3, timeout=40, what="the retries to fail")
    groups = client.get("/api/monitoring/failures", headers=mine).get_json()["items"]
    assert [g["count"] for g in groups] == [6]
    cleared = client.post("/api/admin/queue/clear", json={"queue": "default"}, headers=mine).get_json()
    assert cleared == {"cleared": 6}
    assert client.get("/api/jobs?status=failed", headers=mine).get_json()["items"] == []
    left = client.get("/api/jobs?status=failed", headers=theirs).get_json()["items"]
    assert [job["id"] for job in left] == their_ids
