"""The test fake (J12): capture, every assertion passing and failing, and no Redis or SQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import Engine, event

import tests.sample_jobs_crypto as crypto_jobs
from app.backends.current import backends, replaced
from app.errors import ValidationError
from app.jobs import batch, chain
from app.jobs.dispatch import JobCall, PendingDispatch
from app.testing import CapturedBatch, CapturedJob, FakeQueue, fake_queue
from tasks.demo import Echo, Fail, add
from tests.crypto_keys import use_keys
from tests.sample_jobs import MarkerJob, decorated


@pytest.fixture()
def q() -> Iterator[FakeQueue]:
    with fake_queue() as fake:
        yield fake


def _failure(check: Any, *args: Any) -> str:
    with pytest.raises(AssertionError) as caught:
        check(*args)
    return str(caught.value)


def test_fake_queue_captures_dispatch_with_fluent_options(q: FakeQueue) -> None:
    job_id = (
        Echo.on_queue("high").delay(60).with_priority(9).with_tags("billing").for_tenant("acme").dispatch(value="x")
    )

    [job] = q.pushed(Echo)
    assert job.id == job_id
    assert (job.job_class, job.payload, job.queue, job.priority) == ("demo.echo", {"value": "x"}, "high", 9)
    assert (job.delay_s, job.tenant_id, job.tags, job.depends_on) == (60.0, "acme", ["billing"], None)
    assert job.batch is None and job.chain is None
    q.assert_pushed(Echo, lambda j: j.payload["value"] == "x" and j.delay_s == 60)


def test_fake_queue_records_dependencies_and_class_defaults(q: FakeQueue) -> None:
    first = MarkerJob.dispatch(key="a")
    MarkerJob.after(first).dispatch(key="b")

    assert [j.payload["key"] for j in q.pushed(MarkerJob)] == ["a", "b"]
    assert q.pushed(MarkerJob)[1].depends_on == [first]
    assert q.pushed(MarkerJob)[0].max_attempts == MarkerJob.max_tries


def test_assert_pushed_accepts_class_task_name_and_instance(q: FakeQueue) -> None:
    Echo.dispatch(value=1)
    decorated.dispatch(x=3)
    PendingDispatch(add.name).dispatch(x=1, y=2)

    q.assert_pushed(Echo)
    q.assert_pushed("demo.echo")
    q.assert_pushed(Echo(value=1))
    q.assert_pushed(decorated, lambda j: j.payload == {"x": 3})
    q.assert_pushed(add)
    assert [j.job_class for j in q.pushed()] == ["demo.echo", "tests.decorated", "demo.add"]


def test_assert_pushed_failure_lists_what_was_pushed(q: FakeQueue) -> None:
    Echo.dispatch(value=1)
    MarkerJob.on_queue("high").delay(5).dispatch(key="k")

    message = _failure(q.assert_pushed, Echo, lambda job: job.payload["value"] == 2)

    assert message.splitlines()[0] == (
        'Expected [demo.echo] matching lambda job: job.payload["value"] == 2 to be pushed, but it was not.'
    )
    assert "Pushed jobs (2):" in message
    assert "  - demo.echo {'value': 1} on 'default', priority 5" in message
    assert "  - tests.marker {'key': 'k'} on 'high', priority 5, delay 5s" in message
    assert "Expected [tests.decorated] to be pushed" in _failure(q.assert_pushed, decorated)
    assert "Expected [demo.echo {'value': 3}]" in _failure(q.assert_pushed, Echo(value=3))


def test_assert_pushed_on_checks_the_queue(q: FakeQueue) -> None:
    Echo.on_queue("high").dispatch(value=1)

    q.assert_pushed_on("high", Echo)
    q.assert_pushed_on("high", Echo, lambda j: j.payload["value"] == 1)
    message = _failure(q.assert_pushed_on, "default", Echo)
    assert "Expected [demo.echo] to be pushed on queue 'default', but it was not." in message
    assert "demo.echo {'value': 1} on 'high'" in message


def test_assert_not_pushed(q: FakeQueue) -> None:
    Echo.dispatch(value=1)

    q.assert_not_pushed(MarkerJob)
    q.assert_not_pushed(Echo, lambda j: j.payload["value"] == 2)
    message = _failure(q.assert_not_pushed, Echo)
    assert message.startswith("Expected [demo.echo] not to be pushed, but it was pushed once.")
    assert "demo.echo {'value': 1}" in message


def test_assert_pushed_times(q: FakeQueue) -> None:
    Echo.dispatch(value=1)
    Echo.dispatch(value=2)

    q.assert_pushed_times(Echo, 2)
    q.assert_pushed_times(MarkerJob, 0)
    q.assert_pushed_times(Echo, 1, lambda j: j.payload["value"] == 2)
    message = _failure(q.assert_pushed_times, Echo, 3)
    assert message.startswith("Expected [demo.echo] to be pushed 3 times, but it was pushed 2 times.")
    assert "Pushed jobs (2):" in message


def test_assert_nothing_pushed(q: FakeQueue) -> None:
    q.assert_nothing_pushed()
    assert "Nothing was pushed." in _failure(q.assert_pushed, Echo)

    add_id = PendingDispatch("demo.add").dispatch(x=1)
    message = _failure(q.assert_nothing_pushed)
    assert message.startswith("Expected nothing to be pushed, but something was.")
    assert "demo.add {'x': 1}" in message
    assert q.pushed()[0].id == add_id


def test_batch_is_captured_with_its_callbacks(q: FakeQueue) -> None:
    dispatched = (
        batch([Echo(value=1), MarkerJob.on_queue("high").make(key="a")])
        .name("Import")
        .allow_failures(1)
        .then(Echo(value="ok"))
        .catch(Fail(message="import"))
        .finally_(MarkerJob(key="cleanup"))
        .dispatch()
    )

    [captured] = q.batches
    assert (captured.id, captured.name, captured.allow_failures) == (dispatched.id, "Import", 1)
    assert [j.id for j in captured.jobs] == dispatched.job_ids
    assert [j.batch_id for j in captured.jobs] == [dispatched.id] * 2
    assert captured.then is not None and captured.then.payload == {"value": "ok"}
    assert captured.catch is not None and captured.catch.job_class == "demo.fail"
    assert captured.finally_ is not None and captured.finally_.role == "finally"
    # The members are pushed at once; the callbacks wait for the batch.
    assert [j.job_class for j in q.pushed()] == ["demo.echo", "tests.marker"]
    q.assert_pushed_on("high", MarkerJob, lambda j: j.batch is captured)
    q.assert_not_pushed(Fail)

    def import_batch(b: CapturedBatch) -> bool:
        return b.name == "Import" and b.has(MarkerJob, lambda j: j.payload["key"] == "a") and b.then is not None

    q.assert_batched(import_batch)
    q.assert_batched()
    message = _failure(q.assert_batched, lambda b: b.allow_failures == 0)
    assert message.startswith("Expected a batch matching lambda b: b.allow_failures == 0 to be dispatched")
    assert "batch 'Import': [demo.echo, tests.marker], allow_failures=1, then=demo.echo" in message
    assert "in batch 'Import'" in message


def test_chain_is_captured_with_its_catch_job(q: FakeQueue) -> None:
    dispatched = (
        chain([Echo(value=1), MarkerJob.on_queue("high").make(key="k"), JobCall("demo.add", {"x": 2})])
        .name("pipeline")
        .catch(Fail(message="pipeline"))
        .dispatch()
    )

    [captured] = q.chains
    assert [s.id for s in captured.steps] == dispatched.job_ids
    assert [s.chain_step for s in captured.steps] == [0, 1, 2]
    assert captured.steps[2].depends_on == [dispatched.job_ids[1]]
    assert captured.catch is not None and captured.catch.payload == {"message": "pipeline"}
    # Only the first step reaches the broker at once.
    assert [j.job_class for j in q.pushed()] == ["demo.echo"]

    q.assert_chained([Echo, MarkerJob, add])
    q.assert_chained(["demo.echo", "tests.marker", "demo.add"], catch=Fail)
    q.assert_chained([Echo(value=1), MarkerJob.on_queue("high").make(key="k"), JobCall("demo.add", {"x": 2})])
    message = _failure(q.assert_chained, [Echo, add])
    assert message.startswith("Expected a chain demo.echo -> demo.add to be dispatched, but none matched.")
    assert "chain 'pipeline': demo.echo -> tests.marker -> demo.add, catch=demo.fail" in message
    assert "step 1 of chain 'pipeline'" in message
    assert "Expected a chain demo.echo {'value': 2}" in _failure(q.assert_chained, [Echo(value=2), MarkerJob, add])
    assert "queue='default'" in _failure(q.assert_chained, [Echo, MarkerJob.on_queue("default").make(key="k"), add])
    assert "catch=demo.echo" in _failure(q.assert_chained, [Echo, MarkerJob, add], Echo)


def test_unknown_job_class_is_still_refused_under_the_fake(q: FakeQueue) -> None:
    with pytest.raises(ValidationError, match="unknown job class 'no.such.job'"):
        PendingDispatch("no.such.job").dispatch(a=1)
    with pytest.raises(ValidationError, match="priority"):
        Echo.with_priority(42).dispatch(value=1)
    with pytest.raises(ValidationError, match=r"jobs\[1\]: unknown job class"):
        batch([Echo(value=1), JobCall("no.such.job", {})]).dispatch()
    with pytest.raises(ValidationError, match="then: unknown job class"):
        batch([Echo(value=1)]).then(JobCall("no.such.job", {})).dispatch()
    with pytest.raises(ValidationError, match="allow_failures"):
        batch([Echo(value=1)]).allow_failures(-1).dispatch()
    with pytest.raises(ValidationError, match="at least one job"):
        batch([]).dispatch()
    with pytest.raises(ValidationError, match="catch: unknown job class"):
        chain([Echo(value=1)]).catch(JobCall("no.such.job", {})).dispatch()
    with pytest.raises(ValidationError, match="not available inside a batch"):
        chain([Echo.after("x").make(value=1)]).dispatch()

    q.assert_nothing_pushed()
    assert q.batches == [] and q.chains == []


def test_encrypted_job_payload_is_clear_in_the_capture_but_not_in_messages(q: FakeQueue) -> None:
    with use_keys(Fernet.generate_key().decode()):
        crypto_jobs.SecretEcho.dispatch(secret="s3cret", n=2)

    [job] = q.pushed(crypto_jobs.SecretEcho)
    assert job.encrypted and job.payload == {"secret": "s3cret", "n": 2}
    message = _failure(q.assert_pushed, Echo)
    assert "tests.crypto.echo <encrypted: n, secret>" in message
    assert "s3cret" not in message


def test_nothing_reaches_redis_or_sql(redis_client: redis.Redis) -> None:
    """No new key (a real dispatch adds `high:4`, kombu bindings, the event stream) and no size change."""

    def sizes() -> dict[Any, int]:
        """Length of every list (Celery's queues) and stream (our events); 0 for other keys."""
        found: dict[Any, int] = {}
        for key in redis_client.keys("*"):
            kind = redis_client.type(key)
            found[key] = redis_client.llen(key) if kind == b"list" else 0
            found[key] = redis_client.xlen(key) if kind == b"stream" else found[key]
        return found

    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    before = sizes()
    event.listen(Engine, "before_cursor_execute", count)
    try:
        with fake_queue() as q:
            Echo.on_queue("high").delay(30).dispatch(value=1)
            PendingDispatch("demo.add").dispatch(x=1)
            batch([Echo(value=2), MarkerJob(key="b")]).then(Echo(value="done")).dispatch()
            chain([Echo(value=3), Echo()]).catch(Fail()).dispatch()
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    after = sizes()

    assert len(q.pushed()) == 5
    assert statements == []
    assert set(after) <= set(before)
    assert after == {key: before[key] for key in after}


def test_fake_queue_restores_the_previous_publisher_even_on_error() -> None:
    class Sentinel:
        def publish(self, job: Any) -> None:
            raise AssertionError("the real publisher must not be used here")

    sentinel = Sentinel()
    with replaced(publisher=sentinel):
        with pytest.raises(RuntimeError, match="boom"), fake_queue():
            assert isinstance(backends().publisher, FakeQueue)
            raise RuntimeError("boom")
        assert backends().publisher is sentinel


def test_nested_fakes_each_capture_their_own_block() -> None:
    with fake_queue() as outer:
        Echo.dispatch(value="outer-1")
        with fake_queue() as inner:
            Echo.dispatch(value="inner")
        Echo.dispatch(value="outer-2")

    assert [j.payload["value"] for j in outer.pushed()] == ["outer-1", "outer-2"]
    assert [j.payload["value"] for j in inner.pushed()] == ["inner"]
    assert not isinstance(backends().publisher, FakeQueue)


def test_assertions_still_work_after_the_block_and_clear_forgets(q: FakeQueue) -> None:
    Echo.dispatch(value=1)
    batch([Echo(value=2)]).dispatch()
    assert all(isinstance(j, CapturedJob) for j in q.pushed())
    assert len(q.pushed(Echo, lambda j: j.batch is None)) == 1

    q.clear()
    q.assert_nothing_pushed()


def test_an_unrecognised_job_reference_is_a_type_error(q: FakeQueue) -> None:
    with pytest.raises(TypeError, match="expected a Job class"):
        q.assert_pushed(42)


def test_failure_listing_is_bounded(q: FakeQueue) -> None:
    for n in range(40):
        Echo.dispatch(value=n)

    message = _failure(q.assert_pushed, MarkerJob)
    assert "Pushed jobs (40):" in message
    assert "  ... and 10 more" in message
