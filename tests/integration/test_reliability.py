"""History stays true when processes die and messages vanish (R1), with real workers and Redis.

Each test is the fast, deterministic version of a `make faults` scenario: a pool process
killed right after its job succeeded, a job whose worker process dies under it, a whole
worker SIGKILLed, a message taken off its list by a worker that died before registering it,
a job whose outcome only the result backend knows, and a dispatch that answered an error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from celery.result import AsyncResult

from app.db import session_scope
from app.errors import BackendUnavailable
from app.monitoring.queue_stats import broker_depth, broker_queue_keys
from app.recording.reconcile import Reconciler
from tests.conftest import wait_for
from tests.integration.conftest import WorkerProcess, reconcile_until, wait_dealt_with
from tests.integration.test_execution import attempts, row, wait_status

pytestmark = [pytest.mark.redis, pytest.mark.worker]

#: A worker whose processes keep their events for ten minutes: whatever they run, SQL hears
#: of it only if something else reports it (the worst case a SIGKILL leaves behind).
SILENT = {"CELERIAC_EVENT_FLUSH_MS": "600000", "CELERIAC_EVENT_BUFFER_SIZE": "100000"}


def notes(job_id: str) -> str:
    found = row(job_id)
    assert found is not None
    return " | ".join(note["text"] for note in found.notes or [])


def runs(redis_client: Any, key: str) -> int:
    return int(redis_client.get(key) or 0)


def test_pool_process_killed_right_after_success_is_recorded_completed_and_not_run_again(
    stack: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.backends.celery_publisher import CeleryPublisher  # noqa: F401  (the real broker)
    from tests.sample_jobs import dies_after_success

    queue = f"silent-{unique}"
    silent = WorkerProcess(
        tmp_path / "silent.log", queues=queue, concurrency=1, hostname=f"silent-{unique}@%h", env=SILENT
    )
    try:
        job_id = dies_after_success.apply_async(kwargs={"key": unique}, queue=queue).id
        done = wait_status(job_id, "completed", timeout=60)
    finally:
        silent.stop()
    assert done.result == f"done {unique}"
    assert "recovered from the result backend" in notes(job_id)
    assert runs(redis_client, f"tests:dies-after-success:{unique}") == 1


def test_job_whose_process_is_killed_runs_again_whatever_its_retry_budget(stack: Any, unique: str) -> None:
    from tests.sample_jobs import DiesOnce

    job_id = DiesOnce.dispatch(key=unique)  # max_tries = 1
    done = wait_status(job_id, "completed", "failed", timeout=60)
    assert done.status == "completed" and done.result == "run 2"
    assert "Worker lost" in notes(job_id)


def test_message_taken_by_a_worker_that_died_before_registering_it_is_published_again_once(
    stack: Any, reconciler: Reconciler, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.jobs.dispatch import PendingDispatch

    queue = f"gap-{unique}"
    job_id = PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    # A worker BRPOPs the message and dies before kombu writes it to `unacked`.
    taken = [redis_client.rpop(key) for key in broker_queue_keys(queue)]
    assert sum(1 for message in taken if message) == 1
    # Other tests' lost jobs may be published in the same run: wait for this one's message.
    published_again = lambda _: broker_depth(redis_client, queue) >= 1  # noqa: E731
    reconcile_until(reconciler, published_again, "the lost message to be published again")
    assert broker_depth(redis_client, queue) == 1
    assert reconciler.run_once().republished == 0, "published again once per loss, not once per run"
    assert "Published again by the reconciler" in notes(job_id)
    late = WorkerProcess(tmp_path / "late.log", queues=queue, concurrency=1, hostname=f"late-{unique}@%h")
    try:
        done = wait_status(job_id, "completed", timeout=60)
    finally:
        late.stop()
    assert done.result == "run 1"


def test_outcome_known_only_to_the_result_backend_is_recovered_not_rerun(
    stack: Any, reconciler: Reconciler, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.jobs.dispatch import PendingDispatch

    queue = f"silent-{unique}"
    silent = WorkerProcess(
        tmp_path / "silent.log", queues=queue, concurrency=1, hostname=f"silent-{unique}@%h", env=SILENT
    )
    job_id = PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    wait_for(lambda: AsyncResult(job_id).state == "SUCCESS", what="the job to succeed")
    wait_for(lambda: not any(job_id.encode() in v for v in redis_client.hvals("unacked")), what="its message acked")
    silent.kill()  # its events never left it
    assert row(job_id).status == "pending"  # type: ignore[union-attr]
    reconcile_until(reconciler, lambda r: r.recovered >= 1, "the outcome to be recovered")
    done = wait_status(job_id, "completed")
    assert done.result == "run 1"
    assert "recovered from the result backend" in notes(job_id)
    assert runs(redis_client, f"tests:counted:{unique}") == 1


def test_running_job_of_a_worker_killed_outright_is_requeued_from_heartbeats(
    stack: Any, reconciler: Reconciler, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.jobs.dispatch import PendingDispatch

    queue = f"doomed-{unique}"
    doomed = WorkerProcess(tmp_path / "doomed.log", queues=queue, concurrency=1, hostname=f"doomed-{unique}@%h")
    # tests.marker sleeps on its first run only.
    job_id = PendingDispatch("tests.marker", {"queue": queue}).dispatch(key=unique, seconds=60)
    wait_status(job_id, "processing")
    doomed.kill()
    # Not after the visibility timeout (an hour): once its heartbeats stop.
    reconcile_until(reconciler, lambda r: r.orphans_requeued >= 1, "the orphaned message to go back")
    assert broker_depth(redis_client, queue) == 1
    assert "Worker lost" in notes(job_id)
    late = WorkerProcess(tmp_path / "late.log", queues=queue, concurrency=1, hostname=f"late-{unique}@%h")
    try:
        done = wait_status(job_id, "completed", timeout=60)
    finally:
        late.stop()
    assert done.result == "run 2"
    assert [a.status for a in attempts(job_id)] == ["lost", "completed"]


def test_dispatch_that_answered_an_error_never_runs_even_if_its_message_got_through(
    stack: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.backends.celery_publisher import CeleryPublisher
    from app.backends.current import replaced
    from app.jobs.dispatch import PendingDispatch

    class SentThenTimedOut(CeleryPublisher):
        """The broker got the message, but its answer never came back."""

        def publish(self, job: Any, producer: Any = None) -> None:
            super().publish(job, producer)
            raise TimeoutError("no answer from the broker")

    queue = f"ghost-{unique}"
    with replaced(publisher=SentThenTimedOut()), pytest.raises(BackendUnavailable):
        PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    (message,) = [m for key in broker_queue_keys(queue) for m in redis_client.lrange(key, 0, -1)]
    job_id = json.loads(message)["headers"]["id"]
    assert broker_depth(redis_client, queue) == 1
    late = WorkerProcess(tmp_path / "late.log", queues=queue, concurrency=1, hostname=f"late-{unique}@%h")
    try:
        wait_dealt_with(redis_client, queue, job_id)
    finally:
        late.stop()
    assert runs(redis_client, f"tests:counted:{unique}") == 0
    with session_scope() as session:
        from sqlalchemy import select

        from app.models import JobExecution

        failed = session.scalar(select(JobExecution).where(JobExecution.queue == queue))
        assert failed is not None and failed.status == "failed" and failed.exception_type == "NotQueued"


def test_dispatch_answers_an_error_promptly_and_leaves_a_skip_mark_when_redis_is_frozen(
    stack: Any, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    import os
    import signal
    import threading

    from app.backends import celery_publisher
    from app.celery_app import celery_app
    from app.embedded_redis import PIDFILE_NAME, start_embedded
    from app.jobs.dispatch import PendingDispatch

    frozen = start_embedded(tmp_path / "frozen", persist=False)
    pid = int((frozen.data_dir / PIDFILE_NAME).read_text())
    saved = celery_app.conf.broker_url, celery_app.conf.broker_write_url
    os.kill(pid, signal.SIGSTOP)  # accepts connections, answers nothing: the worst outage
    outcome: list[BaseException | str] = []

    def dispatch() -> None:
        try:
            outcome.append(PendingDispatch("demo.echo", {"queue": f"frozen-{unique}"}).dispatch(value=unique))
        except BaseException as exc:  # what the caller would see
            outcome.append(exc)

    try:
        celery_app.conf.broker_url = celery_app.conf.broker_write_url = frozen.url
        celery_publisher._dispatch_producers.cache_clear()
        caller = threading.Thread(target=dispatch)
        caller.start()
        caller.join(timeout=15)
        assert not caller.is_alive(), "dispatch hung on a frozen Redis"
    finally:
        celery_app.conf.broker_url, celery_app.conf.broker_write_url = saved
        celery_publisher._dispatch_producers.cache_clear()
        os.kill(pid, signal.SIGCONT)
        frozen.stop()
    (error,) = outcome
    assert isinstance(error, BackendUnavailable), error
    with session_scope() as session:
        from sqlalchemy import select

        from app.models import JobExecution

        failed = session.scalar(select(JobExecution).where(JobExecution.queue == f"frozen-{unique}"))
        assert failed is not None and failed.status == "failed" and failed.exception_type == "NotQueued"
        # Redis may have taken the message before it froze: workers will skip it.
        assert redis_client.zscore("celeriac:cancelled:recent", failed.id) is not None


def test_result_and_error_sql_cannot_store_are_stored_in_a_safe_form_and_the_job_ends(stack: Any) -> None:
    from app.celery_app import celery_app

    # 1e308 + 1e308 is infinity, which PostgreSQL's JSON refuses.
    infinite = celery_app.send_task("demo.add", kwargs={"x": 1e308, "y": 1e308}).id
    done = wait_status(infinite, "completed")
    assert done.result == "inf"
    # A NUL character, which PostgreSQL's text refuses, in the payload and in the error.
    nul = celery_app.send_task("demo.fail", kwargs={"message": "before\x00after"}).id
    failed = wait_status(nul, "failed")
    assert "before" in (failed.error_message or "") and "after" in (failed.error_message or "")


def test_orphaned_message_of_a_job_that_had_finished_is_recorded_not_run_again(
    reconciler: Reconciler, unique: str, redis_client: Any
) -> None:
    from app.celery_app import celery_app
    from app.jobs.dispatch import PendingDispatch

    queue = f"finished-{unique}"
    job_id = PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    # A worker took the message (it is in kombu's unacked set), ran the job, stored its
    # result, and died before acknowledging it.
    connection = celery_app.connection_for_write()
    try:
        taken = connection.default_channel.basic_get(queue, no_ack=False)
        assert taken is not None and taken.headers["id"] == job_id
        assert any(job_id.encode() in value for value in redis_client.hvals("unacked"))
        celery_app.backend.mark_as_done(job_id, "stored result")
        reconcile_until(reconciler, lambda r: r.recovered >= 1, "the stored outcome to be recorded")
        done = wait_status(job_id, "completed")
        assert done.result == "stored result"
        assert not any(job_id.encode() in value for value in redis_client.hvals("unacked"))
        assert broker_depth(redis_client, queue) == 0, "not put back to run again"
    finally:
        connection.release()


def test_a_job_that_must_never_run_twice_fails_at_its_first_lost_worker(
    stack: Any, unique: str, redis_client: Any
) -> None:
    from tests.sample_jobs import DiesNeverAgain

    job_id = DiesNeverAgain.dispatch(key=unique)
    failed = wait_status(job_id, "failed", timeout=60)
    assert "on_worker_lost = fail" in (failed.error_message or "")
    assert runs(redis_client, f"tests:dies-never-again:{unique}") == 1


def test_a_lost_job_marked_cancelled_is_ended_not_published_again(
    reconciler: Reconciler, unique: str, redis_client: Any
) -> None:
    from app.backends.celery_canceller import CeleryCanceller
    from app.jobs.dispatch import PendingDispatch

    queue = f"void-{unique}"
    job_id = PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    for key in broker_queue_keys(queue):
        redis_client.delete(key)  # the message is lost ...
    CeleryCanceller(redis_client, None).mark_cancelled(job_id)  # ... and its dispatch had failed
    reconcile_until(reconciler, lambda r: r.voided >= 1, "the job to be ended")
    ended = wait_status(job_id, "cancelled")
    assert "dispatch answered an error" in (ended.error_message or "")
    assert broker_depth(redis_client, queue) == 0


def test_a_dispatch_whose_commit_fails_answers_an_error_and_leaves_a_skip_mark(
    unique: str, redis_client: Any, recording_publisher: list[Any]
) -> None:
    from sqlalchemy.exc import OperationalError

    from app.composition import submit
    from app.jobs.dispatch import PendingDispatch

    real_insert = submit.insert_rows

    def failing_insert(connection: Any, rows: Any) -> None:
        # The dispatch's write is one INSERT, committed as it returns (autocommit).
        if any(values.get("job_class") == "tests.counted" for values in rows):
            raise OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))
        real_insert(connection, rows)

    before = set(redis_client.zrange("celeriac:cancelled:recent", 0, -1))
    # A commit whose answer never comes back (it may have landed).
    submit.insert_rows = failing_insert  # type: ignore[assignment]
    try:
        with pytest.raises(BackendUnavailable):
            PendingDispatch("tests.counted", {"queue": f"lost-{unique}"}).dispatch(key=unique)
    finally:
        submit.insert_rows = real_insert
    assert recording_publisher == [], "nothing published"
    (marked,) = set(redis_client.zrange("celeriac:cancelled:recent", 0, -1)) - before
    assert row(marked.decode()) is None  # here the commit did not land; had it, workers would skip it


def test_a_job_a_dead_worker_held_for_its_eta_goes_back_without_counting_a_loss(
    stack: Any, reconciler: Reconciler, unique: str, redis_client: Any, tmp_path: Path
) -> None:
    from app.jobs.dispatch import PendingDispatch

    queue = f"eta-{unique}"
    doomed = WorkerProcess(tmp_path / "doomed.log", queues=queue, concurrency=1, hostname=f"doomed-{unique}@%h")
    job_id = PendingDispatch("tests.counted", {"queue": queue, "delay_s": 60}).dispatch(key=unique)
    # The worker takes the message at once and holds it until its ETA (unacknowledged).
    wait_for(lambda: any(job_id.encode() in v for v in redis_client.hvals("unacked")), what="the message held")
    doomed.kill()
    reconcile_until(reconciler, lambda r: r.orphans_requeued >= 1, "the held message to go back")
    assert broker_depth(redis_client, queue) == 1
    assert redis_client.get(f"celeriac:worker-losses:{job_id}") is None, "it never started: no loss counted"
    assert "before running it" in notes(job_id)
    assert row(job_id).status == "pending"  # type: ignore[union-attr]


def test_a_lost_retry_is_waited_for_once_then_published_again(
    reconciler: Reconciler, unique: str, redis_client: Any
) -> None:
    from app.celery_app import celery_app
    from app.jobs.dispatch import PendingDispatch

    queue = f"retry-{unique}"
    job_id = PendingDispatch("tests.counted", {"queue": queue}).dispatch(key=unique)
    for key in broker_queue_keys(queue):
        redis_client.delete(key)
    # The result backend says a retry was published: it may still be on its way.
    celery_app.backend.mark_as_retry(job_id, ValueError("first attempt failed"))
    reconcile_until(reconciler, lambda r: r.rechecked >= 1, "the retry to be waited for")
    assert broker_depth(redis_client, queue) == 0
    # Its queue moves on without it: lost after all, published again (once).
    reconcile_until(reconciler, lambda r: r.republished >= 1, "the lost retry to be published again")
    assert broker_depth(redis_client, queue) == 1
    assert "a retry of it was published" in notes(job_id) and "Published again" in notes(job_id)
