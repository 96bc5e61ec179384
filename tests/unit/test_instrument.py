"""`celeriac.instrument`: where events go, what it refuses, and the pieces it connects.

The whole path, with a real project worker, is tests/integration/test_adopt_instrument.py.
"""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery, Task
from celery.app.trace import task_has_custom
from celery.exceptions import Ignore

import celeriac
from celeriac import heartbeat
from celeriac.instrument import instrument, stream_url
from celeriac.skip_aware import is_skip_aware, make_skip_aware, patch_app
from celeriac.task import CeleriacTask, mark_skipped
from tests.conftest import wait_for


def project_app(broker: str = "redis://broker:6379/2") -> Celery:
    return Celery(f"project-{uuid.uuid4().hex[:6]}", broker=broker, set_as_current=False)


# -- where the events go -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("explicit", "environ", "broker", "expected"),
    [
        ("redis://given/1", {"CELERIAC_REDIS_URL": "redis://env/3"}, "redis://broker:6379/2", "redis://given/1"),
        (
            None,
            {"CELERIAC_REDIS_URL": "redis://env/3", "REDIS_URL": "redis://x/4"},
            "redis://broker:6379/2",
            "redis://env/3",
        ),
        (None, {"REDIS_URL": "redis://x/4"}, "redis://broker:6379/2", "redis://broker:6379/2"),
        (None, {"REDIS_URL": "redis://x/4"}, "amqp://guest@rabbit//", "redis://x/4"),
        (None, {}, "redis://a:6379/0;redis://b:6379/0", "redis://a:6379/0"),
        (None, {}, "rediss://secure:6380/0", "rediss://secure:6380/0"),
    ],
)
def test_the_event_stream_url_comes_from_the_first_place_that_names_one(
    explicit: str | None, environ: dict[str, str], broker: str, expected: str
) -> None:
    assert stream_url(project_app(broker), explicit, environ) == expected


def test_a_project_on_another_broker_is_told_how_to_name_celeriacs_redis() -> None:
    with pytest.raises(
        ValueError, match="no Redis for Celeriac's event stream.*pass redis_url= or set CELERIAC_REDIS_URL"
    ):
        stream_url(project_app("amqp://guest@rabbit//"), None, {})


def test_a_url_that_is_not_redis_is_refused_naming_where_it_came_from() -> None:
    with pytest.raises(ValueError, match="CELERIAC_REDIS_URL must be a redis://"):
        stream_url(project_app(), None, {"CELERIAC_REDIS_URL": "amqp://rabbit//"})
    with pytest.raises(ValueError, match="redis_url= must be a redis://"):
        instrument(project_app(), redis_url="http://localhost:6379")


def test_a_bad_celeriac_redis_url_stops_instrument_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_REDIS_URL", "localhost:6379")
    with pytest.raises(ValueError, match="CELERIAC_REDIS_URL must be a redis://.*got 'localhost:6379'"):
        instrument(project_app())


def test_bad_numbers_are_refused_when_instrument_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_WORKER_HEARTBEAT_S", "often")
    with pytest.raises(ValueError, match="CELERIAC_WORKER_HEARTBEAT_S must be a number, got 'often'"):
        instrument(project_app())
    with pytest.raises(ValueError, match="CELERIAC_MAX_RESULT_CHARS must be at least 100"):
        instrument(project_app(), max_result_chars=5)


def test_the_package_exports_the_one_line_api() -> None:
    assert celeriac.instrument is instrument
    assert set(celeriac.__all__) == {"instrument", "report_progress"}


# -- plain tasks honour the skip mark ------------------------------------------------------------


class DatabaseTask(Task):  # type: ignore[type-arg]
    """A project's own base class (`@app.task(base=DatabaseTask)`), as Celery's docs show."""


def test_every_task_of_a_finalized_app_checks_the_skip_mark() -> None:
    app = project_app()
    ran: list[int] = []

    @app.task
    def plain(x: int) -> int:
        ran.append(x)
        return x

    @app.task(base=DatabaseTask)
    def based(x: int) -> int:
        ran.append(x)
        return x

    patch_app(app)
    app.finalize()

    @app.task
    def later(x: int) -> int:  # defined after finalize: inherits the app's base
        ran.append(x)
        return x

    for task in (plain, based, later):
        assert is_skip_aware(task) and task_has_custom(task, "__call__"), task.name
        task.push_request(id="job-1")
        try:
            mark_skipped(task.request)
            with pytest.raises(Ignore):
                task(1)
        finally:
            task.pop_request()
        assert task(2) == 2  # unmarked: runs as before
    assert ran == [2, 2, 2]


def test_celeriacs_own_tasks_and_patched_classes_are_left_alone() -> None:
    assert make_skip_aware(CeleriacTask) is False

    class Once(Task):  # type: ignore[type-arg]
        pass

    assert make_skip_aware(Once) is True
    assert make_skip_aware(Once) is False


# -- heartbeats and progress ---------------------------------------------------------------------


@pytest.mark.redis
def test_a_project_workers_heartbeat_is_what_celeriacs_registry_reads(redis_client: Any, settings: Any) -> None:
    from app import redis_keys
    from app.monitoring.workers import find_worker, list_workers

    hostname = f"project-{uuid.uuid4().hex[:8]}@host"
    consumer = SimpleNamespace(
        hostname=hostname,
        pool=SimpleNamespace(num_processes=3),
        task_consumer=SimpleNamespace(queues=[SimpleNamespace(name="reports"), SimpleNamespace(name="emails")]),
    )
    beat = heartbeat.snapshot(consumer, started_at=1.0)
    heartbeat.write(redis_client, beat)
    assert heartbeat.worker_key(hostname) == redis_keys.worker(hostname) and heartbeat.WORKERS == redis_keys.WORKERS
    found = find_worker(redis_client, hostname)
    assert found is not None and json.loads(json.dumps(beat)) == vars(found)
    assert (found.pool_size, found.queues, found.held, found.stopped_at) == (3, ["emails", "reports"], [], None)
    assert found.rss_mb > 0
    assert [w.status for w in list_workers(redis_client, settings.monitoring) if w.heartbeat.hostname == hostname] == [
        "online"
    ]


def test_report_progress_outside_a_task_only_checks_its_arguments() -> None:
    celeriac.report_progress(1, 2, "half")
    with pytest.raises(ValueError, match="must not exceed total"):
        celeriac.report_progress(3, 2)
    with pytest.raises(TypeError, match="message must be a string"):
        celeriac.report_progress(1, 2, 42)  # type: ignore[arg-type]


def test_the_stream_client_reads_the_broker_at_first_use(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    from celeriac.instrument import StreamRedis

    monkeypatch.delenv("CELERIAC_REDIS_URL", raising=False)
    app = project_app("amqp://guest@rabbit//")
    client = StreamRedis(app, None)
    app.conf.broker_url = "redis://configured-later:6379/5"  # config_from_object after instrument
    assert client().connection_pool.connection_kwargs["host"] == "configured-later"
    assert client() is client()
    assert "not to this app's broker" not in caplog.text
    other = StreamRedis(project_app("redis://broker:6379/0"), "redis://user:secret@celeriac:6379/1")
    other()
    assert "Celeriac records to redis://***@celeriac:6379/1, not to this app's broker" in caplog.text


@pytest.mark.redis
def test_heartbeats_start_when_the_worker_is_ready_and_say_stopped_at_shutdown(redis_client: Any) -> None:
    hostname = f"project-{uuid.uuid4().hex[:8]}@host"
    beats = heartbeat.Heartbeats(lambda: redis_client, interval_s=0.05)
    beats.on_worker_ready(sender=SimpleNamespace(hostname=hostname))
    key = heartbeat.worker_key(hostname)
    wait_for(lambda: redis_client.get(key), what="a first heartbeat")
    beats.on_worker_shutdown()
    last = json.loads(redis_client.get(key))
    assert last["stopped_at"] is not None and last["held"] == [] and beats.thread is None
