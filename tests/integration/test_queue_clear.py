"""`flask queue clear QUEUE --force` against real messages in real Redis: jobs dispatched through
the API (real Celery publishes, one priority sub-list each, and one long delay held in the
scheduled set) on a queue no worker consumes leave the broker, and their rows end cancelled."""

from __future__ import annotations

from typing import Any

import pytest

from app import redis_keys
from app.monitoring.queue_stats import broker_depth, broker_queue_keys

pytestmark = [pytest.mark.redis]


def dispatch(client: Any, headers: dict[str, str], queue: str, **options: Any) -> str:
    answer = client.post(
        "/api/jobs/dispatch",
        json={"job_class": "demo.echo", "payload": {"value": "never runs"}, "options": {"queue": queue, **options}},
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    job_id: str = answer.get_json()["id"]
    return job_id


def test_clear_force_empties_a_worker_less_queue_and_cancels_its_jobs(
    app: Any, client: Any, auth: Any, redis_client: Any, unique: str
) -> None:
    queue = f"clear-it-{unique}"
    operator = auth("operator")
    waiting = [dispatch(client, operator, queue, priority=priority) for priority in (0, 5, 9)]
    held = dispatch(client, operator, queue, delay=90)  # beyond CELERIAC_SCHEDULED_AFTER_S (60)
    assert [redis_client.llen(key) for key in broker_queue_keys(queue) if redis_client.llen(key)] == [1, 1, 1]
    assert redis_client.zscore(redis_keys.SCHEDULED, held) is not None

    result = app.test_cli_runner().invoke(args=["queue", "clear", queue, "--force", "--reason", "bad deploy"])

    assert result.exit_code == 0, result.output
    first, last = result.output.splitlines()[0], result.output.splitlines()[-1]
    assert first == f"Queue {queue}: 3 message(s) waiting in the broker and 1 job(s) held for a long delay or backoff."
    assert last == (
        f"Queue {queue}: cleared 4 (3 message(s) removed from the broker, 1 held job(s)); 4 job(s) cancelled."
    )
    assert broker_depth(redis_client, queue) == 0
    assert redis_client.zscore(redis_keys.SCHEDULED, held) is None
    for job_id in [*waiting, held]:
        shown = client.get(f"/api/jobs/{job_id}", headers=operator).get_json()
        assert (shown["status"], shown["error_message"]) == ("cancelled", f"queue {queue} cleared: bad deploy")
        assert redis_client.exists(redis_keys.cancelled(job_id))
    again = app.test_cli_runner().invoke(args=["queue", "clear", queue, "--force"])
    assert again.exit_code == 0 and again.output.splitlines()[-1] == "Nothing to clear."
