"""A chain step (or callback) with a long delay waits in the scheduled set once it is released,
against real Redis and SQL: held with its previous result, released once, never twice after a
drainer died, and never taken by the reconciler for a lost job."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet

from app import redis_keys
from app.composition.batches import BatchRequest, create_batch, create_chain
from app.composition.hub import Hub
from app.composition.recorder_hook import CompositionStep
from app.composition.resync import rehold_lost
from app.crypto import is_sealed, open_payload, seal
from app.db import session_scope
from app.kernel.dispatching import DispatchSpec, ResolvedJob
from app.kernel.row_batch import Finished
from app.kernel.scheduled import ScheduledSet, run_now
from app.models import JobExecution
from app.recording.scheduled import Releaser
from tests.crypto_keys import use_keys

pytestmark = pytest.mark.redis

HOUR = 3600


class Recording:
    captures_dispatches = False

    def __init__(self) -> None:
        self.published: list[ResolvedJob] = []

    def publish(self, job: ResolvedJob) -> None:
        self.published.append(job)


@pytest.fixture(autouse=True)
def no_other_recorder() -> Iterator[None]:
    """When the integration tests ran first in this session, their recorder thread is still
    running: its composition resync reads the same database and Redis, and could release this
    module's callbacks before the step under test does (CI, once, on PostgreSQL)."""
    from tests.integration.conftest import RecorderThread

    with RecorderThread.all_paused():
        yield


@pytest.fixture()
def quick(settings: Any) -> Any:
    return dataclasses.replace(settings, scheduled_after_s=60, max_delay_s=30 * 24 * HOUR)


@pytest.fixture()
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The messages the releaser rebuilds from rows (app.kernel.message), instead of the broker."""
    messages: list[dict[str, Any]] = []

    def send(app: Any, name: str, **parts: Any) -> None:
        messages.append({"task": name, **parts})

    monkeypatch.setattr("app.kernel.message.send", send)
    yield messages


def echo(**options: Any) -> DispatchSpec:
    return DispatchSpec(job_class="demo.echo", payload={"value": 1}, tenant_id="acme", **options)


def _row(job_id: str) -> JobExecution:
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


def _complete(job_id: str, result: Any) -> None:
    """What the recorder writes when a worker reports the step done."""
    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        row.status, row.result, row.published_at = "completed", result, datetime.now(UTC)


def _release_now(job_id: str, settings: Any, redis_client: Any) -> int:
    # The count may include other tests' due jobs (the set is shared): assert on `sent`.
    """Run now (so the test does not wait an hour), then the recorder's releaser."""
    with session_scope() as session:
        run_now(session, job_id, None, redis_client)
    return Releaser(settings, redis_client, session_scope).release_due()


def test_a_chain_step_with_a_long_delay_waits_in_the_set_with_the_previous_result(
    app: Any, quick: Any, redis_client: Any, sent: list[dict[str, Any]]
) -> None:
    from app.db import db

    publisher = Recording()
    created = create_chain(
        db.session, "acme", [echo(), echo(delay_s=HOUR)], None, "slow", registry=_registry(), publisher=publisher,
        settings=quick, hub=Hub(redis_client),
    )  # fmt: skip
    first, second = created.job_ids
    assert [j.job_id for j in publisher.published] == [first]
    spec = redis_client.get(redis_keys.held_job(second))  # kept to replay a drainer that died
    _complete(first, {"n": 41})
    step = CompositionStep(quick, redis_client, publisher)
    step.after_commit([Finished(id=first, status="completed", chain_id=created.id, chain_step=0)])
    # No broker message: the step waits an hour in the scheduled set, its row says so.
    assert [j.job_id for j in publisher.published] == [first]
    row = _row(second)
    assert row.status == "pending" and row.published_at is None and row.due_at is not None
    assert row.due_at - datetime.now(UTC) == pytest.approx(timedelta(seconds=HOUR), abs=timedelta(seconds=30))
    assert row.payload == {"value": 1, "previous_result": {"n": 41}}
    assert ScheduledSet(redis_client).scores([second]) == [pytest.approx(row.due_at.timestamp())]
    assert redis_client.llen(redis_keys.OUTBOX) == 0 and redis_client.llen(redis_keys.OUTBOX_INFLIGHT) == 0
    # A drainer that died before confirming: recovered and drained again, nothing changes.
    redis_client.rpush(redis_keys.OUTBOX_INFLIGHT, json.dumps({"spec": spec.decode(), "dep": first}))
    step.start()
    step.drain()
    assert publisher.published[1:] == [] and _row(second).due_at == row.due_at
    assert ScheduledSet(redis_client).scores([second]) == [pytest.approx(row.due_at.timestamp())]
    # The reconciler does not take the held step for one whose held copy Redis lost.
    with session_scope() as session:
        later = datetime.now(UTC) + timedelta(hours=2)
        assert second not in rehold_lost(session, Hub(redis_client), later, timedelta(seconds=1))
    # Released when due: its message is rebuilt from the row, with the previous result, once.
    _release_now(second, quick, redis_client)  # (the shared set may hold other tests' due jobs)
    mine = [m for m in sent if m["options"]["task_id"] == second]
    assert [m["kwargs"] for m in mine] == [{"value": 1, "previous_result": {"n": 41}}]
    assert mine[0]["options"]["headers"]["celeriac"]["chain"] == created.id
    released = _row(second)
    assert released.due_at is None and released.published_at is not None
    # A stale outbox entry after the release is dropped: not held again, not published.
    redis_client.rpush(redis_keys.OUTBOX, json.dumps({"spec": spec.decode(), "dep": first}))
    step.drain()
    assert publisher.published[1:] == [] and _row(second).due_at is None
    assert ScheduledSet(redis_client).scores([second]) == [None]


def test_an_encrypted_chain_step_stays_sealed_while_it_waits(
    app: Any, quick: Any, redis_client: Any, sent: list[dict[str, Any]]
) -> None:
    from app.db import db

    with use_keys(Fernet.generate_key().decode()):
        publisher = Recording()
        steps = [echo(encrypted=True), echo(encrypted=True, delay_s=2 * HOUR)]
        created = create_chain(
            db.session, "acme", steps, None, None, registry=_registry(), publisher=publisher, settings=quick,
            hub=Hub(redis_client),
        )  # fmt: skip
        first, second = created.job_ids
        _complete(first, seal("secret result"))
        CompositionStep(quick, redis_client, publisher).after_commit(
            [Finished(id=first, status="completed", chain_id=created.id, chain_step=0)]
        )
        row = _row(second)
        assert row.due_at is not None and row.encrypted and is_sealed(row.payload)
        assert open_payload(row.payload) == {"value": 1, "previous_result": "secret result"}
        _release_now(second, quick, redis_client)
        [kwargs] = [m["kwargs"] for m in sent if m["options"]["task_id"] == second]
        assert is_sealed(kwargs) and open_payload(kwargs)["previous_result"] == "secret result"


def test_a_batch_callback_with_a_long_delay_gets_a_held_row_when_the_batch_finishes(
    app: Any, quick: Any, redis_client: Any
) -> None:
    from app.db import db

    publisher = Recording()
    request = BatchRequest("acme", [echo()], then=echo(delay_s=3 * HOUR))
    created = create_batch(db.session, request, registry=_registry(), publisher=publisher, settings=quick,
                           hub=Hub(redis_client))  # fmt: skip
    (only,) = created.job_ids
    _complete(only, 1)
    CompositionStep(quick, redis_client, publisher).after_commit(
        [Finished(id=only, status="completed", batch_id=created.id)]
    )
    assert [j.job_id for j in publisher.published] == [only]
    then_id = _batch(created.id).then_job["id"]
    row = _row(then_id)
    assert row.status == "pending" and row.published_at is None and row.job_class == "demo.echo"
    assert row.due_at is not None and row.due_at - datetime.now(UTC) > timedelta(hours=2, minutes=59)
    assert ScheduledSet(redis_client).scores([then_id]) == [pytest.approx(row.due_at.timestamp())]


def _registry() -> Any:
    from app.backends.current import backends

    return backends().registry


def _batch(batch_id: str) -> Any:
    from app.models import JobBatch

    with session_scope() as session:
        return session.get(JobBatch, batch_id)


def test_a_dependant_with_a_long_delay_is_held_when_its_dependency_already_finished(
    quick: Any, redis_client: Any, recording_publisher: list[Any]
) -> None:
    import uuid

    from app.backends.current import backends
    from app.composition.submit import submit

    done = str(uuid.uuid4())
    with session_scope() as session:
        session.add(JobExecution(id=done, tenant_id="acme", job_class="demo.echo", queue="default",
                                 status="completed", payload={}, created_at=datetime.now(UTC)))  # fmt: skip
    with session_scope() as session:
        made = submit(
            session, echo(depends_on=[done], delay_s=HOUR), registry=backends().registry,
            publisher=backends().publisher, settings=quick,
        )  # fmt: skip
    assert recording_publisher == []  # released at once by the dispatch, held rather than published
    row = _row(made.id)
    assert row.status == "pending" and row.published_at is None and row.due_at is not None
    assert ScheduledSet(redis_client).scores([made.id]) == [pytest.approx(row.due_at.timestamp())]
