"""Encrypted jobs (J9) on a real worker: a canary secret never appears in clear anywhere.

The worker of this module has its own queue and the keys, and sends task events as it does
while Flower runs; the test process holds the same keys to dispatch. After the jobs ran,
every Redis key of the test database (broker message bodies decoded), every SQL table, the
worker's log, the task events and the API's and console's answers are searched. Control
jobs sent in clear prove the search finds a canary where there is one.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import MetaData, select

from app.crypto import REDACTED, open_payload, seal_payload, unseal
from tests.conftest import wait_for
from tests.crypto_keys import use_keys
from tests.integration.conftest import RecorderThread, WorkerProcess
from tests.sample_jobs_crypto import CRYPTO_QUEUE, SecretEcho
from tests.sample_jobs_sealed import HOOK_KEY, SealedFailure

pytestmark = [pytest.mark.redis, pytest.mark.worker]

NEW_KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()
STRANGER_KEY = Fernet.generate_key().decode()
FINAL = ("completed", "failed", "cancelled")
#: Job.dispatch uses the default tenant; the API tokens here belong to it too.
TENANT = "default"


#: `celery worker -E` through Celery's click environment prefix: task events on, as Flower
#: turns them on (WorkerProcess takes no extra arguments).
TASK_EVENTS = "CELERY_WORKER_TASK_EVENTS"


@pytest.fixture(scope="module")
def crypto_worker(tmp_path_factory: pytest.TempPathFactory, recorder: RecorderThread) -> Iterator[WorkerProcess]:
    """A worker on CRYPTO_QUEUE that has the keys (new first, old still accepted) and sends
    task events."""
    modules = os.environ["CELERIAC_TASK_MODULES"]
    os.environ["CELERIAC_TASK_MODULES"] = f"{modules},tests.sample_jobs_crypto,tests.sample_jobs_sealed"
    os.environ[TASK_EVENTS] = "1"
    try:
        with use_keys(NEW_KEY, OLD_KEY):
            proc = WorkerProcess(
                tmp_path_factory.mktemp("crypto-worker") / "worker.log",
                queues=CRYPTO_QUEUE,
                concurrency=1,
                hostname="crypto-worker@%h",
            )
            try:
                yield proc
            finally:
                proc.stop()
    finally:
        os.environ["CELERIAC_TASK_MODULES"] = modules
        os.environ.pop(TASK_EVENTS, None)


@pytest.fixture()
def keys(crypto_worker: WorkerProcess) -> Iterator[None]:
    with use_keys(NEW_KEY, OLD_KEY):
        yield


def finished(client: Any, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/jobs/{job_id}", headers=headers).get_json()
        return job if job["status"] in FINAL else None

    return wait_for(done, timeout=40, what=f"job {job_id} to finish")


def dispatch(client: Any, headers: dict[str, str], job_class: str, payload: dict[str, Any], **options: Any) -> str:
    body = {"job_class": job_class, "payload": payload, "options": {"queue": CRYPTO_QUEUE, **options}}
    response = client.post("/api/jobs/dispatch", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return str(response.get_json()["id"])


def sql_row(job_id: str) -> Any:
    from app.db import session_scope
    from app.models import JobExecution

    with session_scope() as session:
        row = session.get(JobExecution, job_id)
        assert row is not None
        session.expunge(row)
        return row


# -- where a canary could hide ---------------------------------------------------------


def _decoded(blob: bytes) -> Iterator[bytes]:
    """`blob`, plus the base64 bodies of any kombu message inside it (JSON)."""
    yield blob
    try:
        data = json.loads(blob)
    except (ValueError, UnicodeDecodeError):
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            body = item.get("body")
            if isinstance(body, str):
                try:
                    yield base64.b64decode(body, validate=True)
                except (binascii.Error, ValueError):
                    pass
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item[:1] in "[{":
            yield from _decoded(item.encode())


def _pairs(mapping: dict[bytes, bytes]) -> list[bytes]:
    return [blob for pair in mapping.items() for blob in pair]


#: How to read every value of a key, by Redis type.
_READERS: dict[str, Any] = {
    "string": lambda c, k: [c.get(k) or b""],
    "list": lambda c, k: c.lrange(k, 0, -1),
    "hash": lambda c, k: _pairs(c.hgetall(k)),
    "set": lambda c, k: list(c.smembers(k)),
    "zset": lambda c, k: c.zrange(k, 0, -1),
    "stream": lambda c, k: [blob for _, fields in c.xrange(k) for blob in _pairs(fields)],
}


def redis_values(client: redis.Redis) -> Iterator[tuple[bytes, bytes]]:
    """Every value of every key in the test database, read by type."""
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "none":
            continue  # expired or deleted since the scan saw it
        assert kind in _READERS, f"unexpected Redis type {kind} for {key!r}"
        for blob in [key, *_READERS[kind](client, key)]:
            for text in _decoded(blob):
                yield key, text


def redis_hits(client: redis.Redis, canary: str) -> list[bytes]:
    return sorted({key for key, text in redis_values(client) if canary.encode() in text})


def sql_hits(canary: str) -> list[str]:
    """Tables with a row whose any column holds `canary`."""
    from app.db import get_engine

    engine = get_engine()
    metadata = MetaData()
    metadata.reflect(engine)
    hits = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                if any(canary in str(value) for value in row):
                    hits.append(table.name)
    return hits


def log_text(worker: WorkerProcess) -> str:
    worker.log.flush()
    return worker.log_path.read_text(errors="replace")


def api_text(client: Any, headers: dict[str, str], job_id: str) -> str:
    one = client.get(f"/api/jobs/{job_id}", headers=headers).get_data(as_text=True)
    listed = client.get(f"/api/jobs?queue={CRYPTO_QUEUE}&limit=200", headers=headers).get_data(as_text=True)
    return one + listed


class TaskEvents:
    """Celery task events as Flower receives them (Redis pub/sub), captured in a thread."""

    def __init__(self) -> None:
        from app.celery_app import celery_app

        self.events: list[dict[str, Any]] = []
        self.connection = celery_app.connection_for_read()
        self.receiver = celery_app.events.Receiver(self.connection, handlers={"*": self.events.append})
        self.thread = threading.Thread(target=self.receiver.capture, kwargs={"wakeup": False}, daemon=True)

    def of(self, kind: str, job_id: str) -> list[dict[str, Any]]:
        return [e for e in list(self.events) if e.get("type") == kind and e.get("uuid") == job_id]

    def text(self) -> str:
        return json.dumps(list(self.events), default=str)


@contextmanager
def task_events(worker: WorkerProcess) -> Iterator[TaskEvents]:
    """Listen to task events until the block ends, from the first probe job the listener saw."""
    assert "task events: ON" in log_text(worker)
    listener = TaskEvents()
    listener.thread.start()

    def probe_seen() -> bool:
        job_id = SecretEcho.dispatch(secret="probe")
        try:
            wait_for(lambda: listener.of("task-succeeded", job_id), timeout=5, what="the probe's event")
        except AssertionError:
            return False  # sent before the listener subscribed: send another
        return True

    try:
        wait_for(probe_seen, timeout=40, what="the event listener to receive task events")
        yield listener
    finally:
        listener.receiver.should_stop = True
        listener.thread.join(timeout=10)
        listener.connection.release()


# -- tests -----------------------------------------------------------------------------


def test_canary_is_found_where_a_clear_job_leaves_it(
    keys: None, stack: Any, crypto_worker: WorkerProcess, client: Any, auth: Any, redis_client: Any
) -> None:
    """The control: the search below does find a canary that a job without encryption leaks."""
    canary = f"clear-canary-{uuid.uuid4().hex}"
    headers = auth("operator", TENANT)
    held_queue = f"held-{uuid.uuid4().hex}"
    dispatch(client, headers, "tests.crypto.plain", {"secret": canary}, queue=held_queue)
    job_id = dispatch(client, headers, "tests.crypto.plain", {"secret": canary})
    assert finished(client, headers, job_id)["status"] == "completed"
    wait_for(lambda: canary in log_text(crypto_worker), timeout=10, what="the result in the worker log")

    hits = redis_hits(redis_client, canary)
    assert any(key.startswith(held_queue.encode()) for key in hits)  # the queued body, base64-decoded
    assert f"celery-task-meta-{job_id}".encode() in hits  # the result backend
    assert "job_executions" in sql_hits(canary)
    assert canary in api_text(client, headers, job_id)
    redis_client.delete(*redis_client.keys(f"{held_queue}*"))


def test_encrypted_jobs_leave_no_clear_payload_or_result_anywhere(
    keys: None, stack: Any, crypto_worker: WorkerProcess, client: Any, auth: Any, redis_client: Any, unique: str
) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    headers = auth("operator", TENANT)
    # Given: encrypted jobs through the API (a Job class and a plain task), through
    # Job.dispatch (one retried once), one sealed with the old key, and one left queued.
    via_api = dispatch(client, headers, "demo.echo", {"value": {"card": canary}}, encrypted=True)
    plain = dispatch(client, headers, "tests.crypto.plain", {"secret": canary}, encrypted=True)
    held_queue = f"held-{unique}"
    held = dispatch(client, headers, "demo.echo", {"value": canary}, encrypted=True, queue=held_queue)
    via_class = SecretEcho.dispatch(secret=canary, n=21, fail_first=unique)
    with use_keys(OLD_KEY):
        before_rotation = SecretEcho.dispatch(secret=canary, n=1)

    # When: the worker ran them.
    jobs = {job_id: finished(client, headers, job_id) for job_id in (via_api, plain, via_class, before_rotation)}

    # Then: they completed, and their bodies saw the clear payload (the sealed results say so).
    assert {job["status"] for job in jobs.values()} == {"completed"}, jobs
    assert jobs[via_class]["attempts"] == 2
    results = {job_id: unseal(sql_row(job_id).result) for job_id in jobs}
    assert results[via_api] == {"card": canary}
    assert results[plain] == {"echo": canary}
    assert results[via_class] == {"echo": canary, "double": 42, "attempt": 2}
    assert results[before_rotation] == {"echo": canary, "double": 2, "attempt": 1}
    assert open_payload(sql_row(via_class).payload) == {"secret": canary, "n": 21, "fail_first": unique}
    for job in jobs.values():
        assert job["payload"] == "[encrypted]" and job["result"] == "[encrypted]"

    # And the canary is nowhere: Redis (queued message included), SQL, worker log, API.
    queued = [m for key in redis_client.keys(f"{held_queue}*") for m in redis_client.lrange(key, 0, -1)]
    assert len(queued) == 1
    assert json.loads(queued[0])["headers"]["kwargsrepr"] == "[encrypted]"
    assert redis_hits(redis_client, canary) == []
    assert sql_hits(canary) == []
    log = log_text(crypto_worker)
    assert all(job_id in log for job_id in jobs)  # the worker did log these jobs
    assert canary not in log
    for job_id in [*jobs, held]:
        assert canary not in api_text(client, headers, job_id)
    redis_client.delete(*redis_client.keys(f"{held_queue}*"))


def test_message_sealed_with_an_unknown_key_fails_cleanly_and_the_worker_goes_on(
    keys: None, stack: Any, crypto_worker: WorkerProcess, client: Any, auth: Any, unique: str
) -> None:
    headers = auth("operator", TENANT)
    with use_keys(STRANGER_KEY):  # another deployment's key
        stranger = SecretEcho.dispatch(secret="x", fail_first=unique)
    after = SecretEcho.dispatch(secret="next", n=2)

    failed = finished(client, headers, stranger)
    assert failed["status"] == "failed" and failed["attempts"] == 1  # SecretEcho allows 3: no retry
    # The answer hides an encrypted job's error; the row keeps Celeriac's own words in clear.
    assert failed["exception_type"] == "EncryptedJobError" and failed["error_message"] == REDACTED
    assert sql_row(stranger).error_message.startswith("EncryptedJobError: encrypted job cannot run")
    assert "unknown key" in sql_row(stranger).error_message
    assert finished(client, headers, after)["status"] == "completed"
    assert unseal(sql_row(after).result) == {"echo": "next", "double": 4, "attempt": 1}
    assert crypto_worker.process.poll() is None


def test_sealed_envelope_in_a_hand_made_message_is_opened_by_a_plain_task(
    keys: None, stack: Any, crypto_worker: WorkerProcess, client: Any, auth: Any
) -> None:
    """A producer that seals but sets no Celeriac header still gets a sealed result back."""
    from app.celery_app import celery_app

    job_id = str(uuid.uuid4())
    celery_app.send_task(
        "tests.crypto.plain", kwargs=seal_payload({"secret": "hand"}), task_id=job_id, queue=CRYPTO_QUEUE
    )
    job = finished(client, auth("operator", TENANT), job_id)
    assert job["status"] == "completed" and job["payload"] == "[encrypted]"
    assert unseal(sql_row(job_id).result) == {"echo": "hand"}


def test_canary_is_found_where_a_clear_failure_leaves_it(
    keys: None, stack: Any, crypto_worker: WorkerProcess, client: Any, auth: Any, redis_client: Any
) -> None:
    """The control for errors: the same searches find a canary a job without encryption raised."""
    canary = f"clear-error-canary-{uuid.uuid4().hex}"
    headers = auth("operator", TENANT)
    with task_events(crypto_worker) as events:
        job_id = dispatch(client, headers, "demo.fail", {"message": f"card {canary} declined"})
        assert finished(client, headers, job_id)["status"] == "failed"
        wait_for(lambda: events.of("task-failed", job_id), timeout=20, what="the task-failed event")

    assert f"celery-task-meta-{job_id}".encode() in redis_hits(redis_client, canary)
    assert "job_executions" in sql_hits(canary) and "job_attempts" in sql_hits(canary)
    assert canary in log_text(crypto_worker) and canary in events.text()
    assert canary in api_text(client, headers, job_id)
    assert canary in client.get(f"/api/jobs/{job_id}/failure-report", headers=headers).get_data(as_text=True)


def test_encrypted_failures_leave_no_clear_error_anywhere(
    keys: None,
    stack: Any,
    crypto_worker: WorkerProcess,
    client: Any,
    auth: Any,
    console: Any,
    redis_client: Any,
) -> None:
    """Exception messages quoting the payload: sealed at the source, readable only by an admin's reveal."""
    canary = f"error-canary-{uuid.uuid4().hex}"
    headers = auth("operator", TENANT)
    with task_events(crypto_worker) as events:
        # Given: encrypted jobs whose exceptions quote their payload: demo.fail through the API,
        # a Job class retried once (Job.dispatch), and a plain task with Celery's autoretry.
        demo_fail = dispatch(client, headers, "demo.fail", {"message": f"card {canary} declined"}, encrypted=True)
        retried = SealedFailure.dispatch(secret=canary)
        autoretry = dispatch(client, headers, "tests.sealed.autoretry", {"secret": canary}, encrypted=True)

        # When: they failed for good.
        jobs = {job_id: finished(client, headers, job_id) for job_id in (demo_fail, retried, autoretry)}
        wait_for(
            lambda: all(events.of("task-failed", job_id) for job_id in jobs), timeout=20, what="task-failed events"
        )

    # Then: the history says what failed and how often, with the exception type readable.
    assert {job["status"] for job in jobs.values()} == {"failed"}, jobs
    assert [jobs[i]["attempts"] for i in (demo_fail, retried, autoretry)] == [1, 2, 2]
    assert [jobs[i]["exception_type"] for i in (demo_fail, retried, autoretry)] == [
        "RuntimeError",
        "ValueError",
        "ValueError",
    ]
    for job in jobs.values():
        assert job["error_message"] == REDACTED and job["exception_trace"] == REDACTED
    # The job's own failed() hook was given the original exception (it stored it sealed).
    hook_saw = unseal(redis_client.get(HOOK_KEY.format(job_id=retried)).decode())
    assert hook_saw == {"type": "ValueError", "message": f"card {canary} declined"}
    # Celery's result backend, log and events did see these failures and retries...
    assert all(redis_client.exists(f"celery-task-meta-{job_id}") for job_id in jobs)
    log = log_text(crypto_worker)
    assert all(f"[{job_id}] raised unexpected: SealedError(" in log for job_id in jobs)
    assert all(f"[{job_id}] retry: Retry in 0s: SealedError(" in log for job_id in (retried, autoretry))
    assert all(events.of("task-retried", job_id) for job_id in (retried, autoretry))

    # ... and the canary is nowhere: Redis, SQL, worker log, task events (Flower), API, console.
    assert redis_hits(redis_client, canary) == []
    assert sql_hits(canary) == []
    assert canary not in log
    assert canary not in events.text()
    for job_id in jobs:
        assert canary not in api_text(client, headers, job_id)
        report = client.get(f"/api/jobs/{job_id}/failure-report", headers=headers)
        assert report.status_code == 200 and canary not in report.get_data(as_text=True)
    groups = client.get("/api/monitoring/failures?limit=200", headers=headers).get_json()["items"]
    ours = [g for g in groups if set(g["sample_job_ids"]) & set(jobs)]
    assert ours and all(g["message"] == REDACTED and g["last_message"] == REDACTED for g in ours)
    assert canary not in json.dumps(groups)
    viewer = console(role="viewer", tenant=TENANT)
    for path in [f"/jobs/{job_id}" for job_id in jobs] + ["/failed", "/jobs?status=failed"]:
        page = viewer.get(path)
        assert page.status_code == 200 and canary not in page.get_data(as_text=True)

    # An admin may reveal one: it shows the clear error, and leaves no clear trace behind.
    admin = console(role="admin", tenant=TENANT)
    revealed = admin.post(f"/jobs/{retried}/reveal-error", data={"reason": "canary test"})
    assert revealed.status_code == 200 and revealed.headers["Cache-Control"] == "no-store"
    assert f"card {canary} declined" in revealed.get_data(as_text=True)
    assert redis_hits(redis_client, canary) == [] and sql_hits(canary) == []
