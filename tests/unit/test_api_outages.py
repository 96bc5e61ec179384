"""Outages answer clearly (issue 11, item 6): 503 with Retry-After, never 500; /healthz stays up.

Backends are made unreachable for real: an app whose DATABASE_URL or REDIS_URL points at a
closed port, a private redis-server this test stops and starts, and a private SQLite file
another connection holds locked.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kombu
import pytest
import redis
import sqlalchemy.exc
from flask import Flask

from app.backends.current import replaced
from app.config import get_settings
from app.db import db
from app.errors import BackendUnavailable
from app.services.auth import create_token
from ops_ui import create_app
from ops_ui.errors import RETRY_AFTER_S, backend_outage
from tests.conftest import assert_problem, wait_for

#: Nothing listens on port 1 of the loopback: connections are refused at once.
CLOSED_SQL = "postgresql+psycopg://celeriac@127.0.0.1:1/celeriac"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


def _app(**overrides: Any) -> Flask:
    """The web app with some settings replaced (the test config of conftest otherwise)."""
    return create_app({"TESTING": True, "WTF_CSRF_ENABLED": False}, settings=replace(get_settings(), **overrides))


def _token(app: Flask, role: str = "operator") -> dict[str, str]:
    """A real token, made in the app's own database."""
    with app.app_context():
        new = create_token(db.session, "acme", role, name="outage test")
        db.session.commit()
        return {"Authorization": f"Bearer {new.raw}"}


def assert_unavailable(response: Any, backend: str) -> dict[str, Any]:
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
    assert backend in body["detail"] and "Traceback" not in body["detail"]
    return body


def assert_outage_page(response: Any, backend: str) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
    page = response.get_data(as_text=True)
    assert backend in page and "This page will work again as soon as" in page
    assert "Traceback" not in page and "OperationalError" not in page and "ConnectionError" not in page


# -- SQL unreachable --------------------------------------------------------------------
@pytest.fixture()
def sql_down() -> Flask:
    return _app(database_url=CLOSED_SQL)


def test_healthz_answers_with_both_backends_unreachable() -> None:
    app = _app(database_url=CLOSED_SQL, redis_url=CLOSED_REDIS)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs"),
        ("GET", "/api/jobs/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/jobs/dispatch"),
        ("POST", "/api/batches"),
        ("GET", "/api/jobs/queue/default/stats"),
        ("GET", "/api/admin/queue/health"),
        ("GET", "/api/openapi.json"),
        ("GET", "/metrics"),
    ],
)
def test_api_answers_503_with_retry_after_when_the_database_is_unreachable(
    sql_down: Flask, method: str, path: str
) -> None:
    body = {"job_class": "demo.echo", "payload": {}, "jobs": [{"job_class": "demo.echo"}]}
    response = sql_down.test_client().open(
        path, method=method, headers={"Authorization": "Bearer cel_anything"}, json=body if method == "POST" else None
    )
    assert_unavailable(response, "the database")


def test_login_answers_a_readable_503_page_when_the_database_is_unreachable(sql_down: Flask) -> None:
    client = sql_down.test_client()
    assert client.get("/login").status_code == 200  # the form itself needs no backend
    response = client.post("/login", data={"email": "someone@example.com", "password": "correct horse battery"})
    assert_outage_page(response, "the database")


def test_console_page_of_a_signed_in_user_is_a_readable_503_page(sql_down: Flask, console: Any) -> None:
    signed_in = console("operator")
    cookie = signed_in.client.get_cookie("session")
    assert cookie is not None
    client = sql_down.test_client()
    client.set_cookie("session", cookie.value)
    for path in ("/", "/jobs", "/queues"):
        response = client.get(path)
        assert_outage_page(response, "the database")
        assert "Celeriac cannot reach the database right now." in response.get_data(as_text=True)


# -- Redis unreachable ------------------------------------------------------------------
def test_redis_down_fails_only_what_needs_redis() -> None:
    app = _app(redis_url=CLOSED_REDIS)
    headers = _token(app, "admin")
    client = app.test_client()
    assert client.get("/api/jobs", headers=headers).status_code == 200  # SQL only
    assert client.get("/api/definitions", headers=headers).status_code == 200
    assert_unavailable(client.get("/api/jobs/queue/default/stats", headers=headers), "Redis")
    assert_unavailable(client.get("/api/admin/queue/stats", headers=headers), "Redis")
    assert_unavailable(client.get("/metrics", headers=headers), "Redis")
    assert client.get("/healthz").status_code == 200


def test_login_answers_a_readable_503_page_when_redis_is_unreachable() -> None:
    response = (
        _app(redis_url=CLOSED_REDIS)
        .test_client()
        .post("/login", data={"email": "someone@example.com", "password": "correct horse battery"})
    )
    assert_outage_page(response, "Redis")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of this test's own, on a free port, that it may stop and start."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self.answers, timeout=10, what="private redis-server answering")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    try:
        subprocess.run(["redis-server", "--version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


def test_redis_restart_answers_503_meanwhile_and_works_again_after(private_redis: PrivateRedis) -> None:
    app = _app(redis_url=private_redis.url)
    headers = _token(app, "viewer")
    client = app.test_client()
    assert client.get("/metrics", headers=headers).status_code == 200
    private_redis.stop()
    assert_unavailable(client.get("/metrics", headers=headers), "Redis")
    assert client.get("/api/jobs", headers=headers).status_code == 200  # SQL still answers
    private_redis.start()
    assert client.get("/metrics", headers=headers).status_code == 200


# -- a database that fails a write mid-request ------------------------------------------
@pytest.fixture()
def locked_sqlite(tmp_path: Path) -> Iterator[tuple[Flask, Callable[[], sqlite3.Connection]]]:
    """An app on a private SQLite file, and a way to hold that file's write lock."""
    path = tmp_path / "private.db"
    app = create_app(
        {"TESTING": True, "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 0.2}}},
        settings=replace(get_settings(), database_url=f"sqlite:///{path}"),
    )
    with app.app_context():
        db.create_all()

    def lock() -> sqlite3.Connection:
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the write lock; readers go on (WAL)
        return holder

    yield app, lock
    with app.app_context():
        db.engine.dispose()


def test_failed_write_answers_503_and_the_next_request_works(
    locked_sqlite: tuple[Flask, Callable[[], sqlite3.Connection]], recording_publisher: list[Any]
) -> None:
    app, lock = locked_sqlite
    headers = _token(app)
    body = {"job_class": "demo.echo", "payload": {"value": 1}}
    # One app context around every request, as a long-lived session would see them: the
    # failed write must not leave the session unusable for the next request.
    with app.app_context():
        client = app.test_client()
        assert client.get("/api/jobs", headers=headers).status_code == 200  # notes the token's use
        holder = lock()
        assert_unavailable(client.post("/api/jobs/dispatch", json=body, headers=headers), "the database")
        assert recording_publisher == []
        holder.execute("ROLLBACK")
        holder.close()
        created = client.post("/api/jobs/dispatch", json=body, headers=headers)
        assert created.status_code == 201, created.get_data(as_text=True)
        assert [job.job_id for job in recording_publisher] == [created.get_json()["id"]]


# -- the broker refusing a publish (BackendUnavailable from the service) ------------------
class ClosedBroker:
    """Publishes through a real kombu connection to a port where no broker listens."""

    def publish(self, job: Any) -> None:
        with kombu.Connection(CLOSED_REDIS, connect_timeout=0.5) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)


def test_dispatch_the_broker_refuses_answers_503_with_retry_after(client: Any, auth: Any) -> None:
    with replaced(publisher=ClosedBroker()):
        response = client.post("/api/jobs/dispatch", json={"job_class": "demo.echo"}, headers=auth())
    assert_problem(response, 503)
    assert response.headers["Retry-After"] == str(RETRY_AFTER_S)


# -- what counts as an outage -------------------------------------------------------------
def _raised(action: Callable[[], Any]) -> BaseException:
    try:
        action()
    except BaseException as exc:  # the exception a real failure raises is what is classified
        return exc
    raise AssertionError("expected the backend to be unreachable")


def test_backend_outage_recognises_real_failures_of_each_backend() -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(CLOSED_SQL, connect_args={"connect_timeout": 1})
    sql_error = _raised(lambda: engine.connect().execute(text("SELECT 1")))
    assert isinstance(sql_error, sqlalchemy.exc.OperationalError)
    assert backend_outage(sql_error) == "the database"
    redis_error = _raised(lambda: redis.Redis.from_url(CLOSED_REDIS).ping())
    assert backend_outage(redis_error) == "Redis"
    kombu_error = _raised(lambda: ClosedBroker().publish(None))
    assert backend_outage(kombu_error) == "the broker"

    def wrapped() -> None:
        try:
            redis.Redis.from_url(CLOSED_REDIS).get("x")
        except redis.RedisError as exc:
            raise RuntimeError("could not read the counter") from exc

    assert backend_outage(_raised(wrapped)) == "Redis"
    assert backend_outage(ValueError("a bug")) is None
    assert backend_outage(BackendUnavailable("down")) is None  # an AppError: its own handler
