"""Chain steps and batch callbacks with a long delay, with a real worker and a real recorder
process: held in Celeriac's scheduled set when released, run once, not before they are due,
with the previous step's result. A 1 s threshold stands in for "longer than a broker ETA"."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from app.composition import batch, chain
from app.config import get_settings
from app.db import session_scope
from app.models import JobBatch, JobExecution
from tasks.demo import Echo
from tests.conftest import wait_for
from tests.integration.test_scheduled_delays import _after_next_reconcile, quick_stack
from tests.sample_jobs import MarkerJob

pytestmark = pytest.mark.redis

QUEUE = "held-chain-it"
#: Worker events carry the worker's clock; the due time the recorder's (one host here).
SKEW = timedelta(milliseconds=500)


@pytest.fixture(scope="module")
def held_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with quick_stack(tmp_path_factory.mktemp("held-chain"), QUEUE, "held-chain"):
        yield


@pytest.fixture()
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process dispatches with the same short threshold as the worker and the recorder."""
    settings = dataclasses.replace(get_settings(), scheduled_after_s=1, max_delay_s=30 * 24 * 3600)
    monkeypatch.setattr("app.jobs.builders.get_settings", lambda: settings)
    monkeypatch.setattr("app.jobs.dispatch.get_settings", lambda: settings)


def _row(job_id: str) -> JobExecution:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


def _maybe_row(job_id: str) -> JobExecution | None:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        if row is not None:
            session.expunge(row)
        return row


def test_a_chain_step_with_a_long_delay_runs_once_when_due_with_the_previous_result(
    held_stack: None, quick: None, redis_client: Any, unique: str
) -> None:
    made = chain([Echo.on_queue(QUEUE).make(value=unique), Echo.on_queue(QUEUE).delay(3).make()]).dispatch()
    first, second = made.job_ids
    # Released when step 1 finished, step 2 waits in the set: pending, due, no message.
    held = wait_for(lambda: (r := _row(second)).due_at is not None and r, timeout=30, what="step 2 to be held")
    assert held.status == "pending" and held.published_at is None
    done = wait_for(lambda: (r := _row(second)).status == "completed" and r, timeout=30, what="step 2 to run")
    step1 = _row(first)
    assert step1.completed_at is not None and held.due_at is not None
    assert held.due_at >= step1.completed_at + timedelta(seconds=3) - SKEW  # the delay counts from step 1's end
    assert done.started_at is not None and done.started_at >= held.due_at - SKEW
    assert done.started_at <= held.due_at + timedelta(seconds=5)
    assert done.result == unique and done.attempts == 1 and done.due_at is None
    _after_next_reconcile(redis_client)
    assert _row(second).attempts == 1


def test_a_batch_then_callback_with_a_long_delay_runs_once_after_the_batch(
    held_stack: None, quick: None, redis_client: Any, unique: str
) -> None:
    made = (
        batch([MarkerJob.on_queue(QUEUE).make(key=f"{unique}-a"), MarkerJob.on_queue(QUEUE).make(key=f"{unique}-b")])
        .then(MarkerJob.on_queue(QUEUE).delay(2).make(key=f"{unique}-then"))
        .dispatch()
    )
    with session_scope() as session:
        found = session.get(JobBatch, made.id)
        assert found is not None and found.then_job is not None
        then_id = found.then_job["id"]
    held = wait_for(
        lambda: (r := _maybe_row(then_id)) is not None and r.due_at is not None and r, timeout=30, what="then held"
    )
    assert held.status == "pending" and held.published_at is None
    done = wait_for(lambda: (r := _row(then_id)).status == "completed" and r, timeout=30, what="then to run")
    last = max(_row(job_id).completed_at for job_id in made.job_ids)  # type: ignore[type-var]
    assert done.started_at is not None and held.due_at is not None
    assert done.started_at >= held.due_at - SKEW and held.due_at >= last + timedelta(seconds=2) - SKEW
    assert int(redis_client.get(f"tests:marker:{unique}-then:runs") or 0) == 1 and done.attempts == 1
    _after_next_reconcile(redis_client)  # nothing runs it again (no lost message, no held copy left)
    assert int(redis_client.get(f"tests:marker:{unique}-then:runs") or 0) == 1
