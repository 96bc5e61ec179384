"""Test harness: real Redis (embedded when none is reachable), SQLite or PostgreSQL.

The environment is set here, before any `app` module reads its settings. Redis: a
database number of its own, flushed at the end. SQL: a temporary SQLite file, or a
PostgreSQL database of its own when CELERIAC_TEST_DB=postgresql (dropped at the end).
A PostgreSQL run with no PostgreSQL fails at once (`make test` asks scripts/pg_available.py
first and skips that run locally when nothing answers, so asking for it means wanting it).
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
_TMP = Path(tempfile.mkdtemp(prefix="celeriac-tests-"))
_cleanups: list[Callable[[], None]] = []
#: A project of its own (its `app` package, its own tests), run only as subprocesses by
#: tests/integration/test_adopt_*.py: never collected or imported into this session.
collect_ignore = ["sample_project"]


def _refuse_to_run(message: str) -> None:
    """Stop the session with a usage error: a run that cannot test what was asked is not green."""
    print(f"ERROR: {message}", file=sys.stderr)
    pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


_CLAIM = "celeriac:tests:claim"
#: Take over a claim whose test process is gone (it left only the claim behind).
_TAKE_STALE_CLAIM = """
if redis.call('DBSIZE') == 1 and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2])
end
return false
"""


def _pid_alive(raw: bytes | None) -> bool:
    try:
        os.kill(int(raw or b"0"), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(raw or b"0") > 0


def _pick_redis_db(base_url: str) -> str:
    """The first free database number from 15 down, so tests never touch others' data.

    Free: empty, or holding only the claim of a test run whose process is gone.
    """
    for db_number in range(15, 7, -1):
        client = redis.Redis.from_url(f"{base_url}/{db_number}")
        mine = str(os.getpid())
        if client.dbsize() == 0 and client.set(_CLAIM, mine, nx=True):
            return f"{base_url}/{db_number}"
        stale = client.get(_CLAIM)
        if stale is not None and not _pid_alive(stale) and client.eval(_TAKE_STALE_CLAIM, 1, _CLAIM, stale, mine):
            return f"{base_url}/{db_number}"
    raise RuntimeError("no free Redis database between 8 and 15")


def _resolve_redis() -> str:
    candidate = os.environ.get("TEST_REDIS_URL") or "redis://127.0.0.1:6379"
    try:
        redis.Redis.from_url(candidate, socket_connect_timeout=1).ping()
        return _pick_redis_db(candidate.rstrip("/"))
    except redis.RedisError:
        from app.embedded_redis import start_embedded

        server = start_embedded(_TMP / "redis", persist=False)
        _cleanups.append(server.stop)
        return server.url.rsplit("/", 1)[0] + "/1"


def _resolve_database() -> str:
    if os.environ.get("CELERIAC_TEST_DB") != "postgresql":
        return f"sqlite:///{_TMP / 'celeriac-test.db'}"
    import psycopg

    admin_url = os.environ.get("TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"celeriac_test_{os.getpid()}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _refuse_to_run(
            f"CELERIAC_TEST_DB=postgresql, but PostgreSQL is not reachable at {admin_url} "
            f"(TEST_POSTGRES_ADMIN_URL): {exc}. Start PostgreSQL, or unset CELERIAC_TEST_DB to test on SQLite."
        )

    def drop() -> None:
        from app.db import get_engine

        get_engine().dispose()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    _cleanups.append(drop)
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


REDIS_URL = _resolve_redis()
DATABASE_URL = _resolve_database()
os.environ.update(
    REDIS_URL=REDIS_URL,
    DATABASE_URL=DATABASE_URL,
    SECRET_KEY="test-secret",
    CELERIAC_TASK_MODULES="tests.sample_jobs",
    CELERIAC_WORKER_LOST_RETRY_DELAY_S="0",
    CELERIAC_MAX_DELAY_S="120",
    # Workers beat every second, so a test's reconciler may call a worker offline after a
    # few seconds without mistaking a live one for dead.
    CELERIAC_WORKER_HEARTBEAT_S="1",
)
os.environ.pop("CELERIAC_TRACKING", None)

from app.config import get_settings  # noqa: E402

get_settings.cache_clear()


def _migrate() -> None:
    from flask_migrate import upgrade

    from ops_ui import create_app

    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))


_migrate()


def _stop_strays() -> None:
    """Kill processes a test left running on this session's Redis database (a supervisord's
    orphaned worker, say), and name them: the next run on this machine must not meet them."""
    import psutil

    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            if process.pid == os.getpid() or process.environ().get("REDIS_URL") != REDIS_URL:
                continue
            print(f"stopping a process a test left running: {process.info['cmdline']}", file=sys.stderr)
            process.kill()
        except psutil.Error:
            continue


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _stop_strays()
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
    except redis.RedisError:
        pass
    for cleanup in reversed(_cleanups):
        try:
            cleanup()
        except Exception as exc:  # report, but let the other cleanups run
            print(f"cleanup failed: {exc}", file=sys.stderr)


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; last value {last!r}")


@pytest.fixture(scope="session")
def settings() -> Any:
    return get_settings()


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture()
def app() -> Iterator[Any]:
    from ops_ui import create_app

    flask_app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True})
    with flask_app.app_context():
        yield flask_app


@pytest.fixture()
def client(app: Any) -> Any:
    return app.test_client()


@pytest.fixture()
def make_token(app: Any) -> Callable[..., str]:
    from app.db import db
    from app.services.auth import create_token

    def make(role: str = "operator", tenant: str = "acme") -> str:
        new = create_token(db.session, tenant, role, name="test")
        db.session.commit()
        return new.raw

    return make


@pytest.fixture()
def auth(make_token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    def headers(role: str = "operator", tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {make_token(role, tenant)}"}

    return headers


@pytest.fixture()
def unique() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture()
def recording_publisher() -> Iterator[list[Any]]:
    """Publishes nothing; lists what would have been sent to the broker."""
    from app.backends.current import replaced
    from app.backends.twins import MemoryPublisher

    publisher = MemoryPublisher()
    with replaced(publisher=publisher):
        yield publisher.published


@pytest.fixture()
def twins() -> Iterator[Any]:
    """In-memory twins of every backend (app.backends.twins) in place of Celery, Redis and
    RedBeat for the test; the registry stays the real one (the Celery app's task table, no I/O)."""
    from app.backends import current
    from app.backends.twins import twins as make_twins

    used = make_twins(registry=current.backends().registry)
    previous = current.install(used)
    yield used
    current.install(previous)


@pytest.fixture()
def no_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any command the test itself sends to a Redis server fails it: proof that twins stood in.

    Only this thread is watched: a recorder or event flusher another fixture left running
    in the background keeps its own Redis.
    """
    original = redis.connection.AbstractConnection.send_packed_command
    test_thread = threading.current_thread()

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not test_thread:
            return original(self, *args, **kwargs)
        raise AssertionError("this test runs on in-memory twins and must not reach Redis")

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", refuse)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The answer is a complete problem+json document with `status`."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def page_csrf_token(html: str) -> str:
    """The CSRF token a console page carries (its meta tag or any form field)."""
    import re

    match = re.search(r'name="csrf-token" content="([^"]+)"', html) or re.search(
        r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html
    )
    assert match, html
    return match.group(1)


def _forget_cached_csrf() -> None:
    """Flask-WTF caches the token (and Flask-Login the user) in `g`, which the test's app context
    shares between clients: without this, a request runs as whoever logged in last."""
    from flask import g

    g.pop("csrf_token", None)
    g.pop("_login_user", None)


class ConsoleSession:
    """A test client logged in to the console as one user; `post` adds the CSRF token."""

    def __init__(self, client: Any, user_id: str, email: str, role: str, tenant: str | None) -> None:
        self.client = client
        self.user_id = user_id
        self.email = email
        self.role = role
        self.tenant = tenant
        self._token: str | None = None

    def get(self, path: str, **kwargs: Any) -> Any:
        _forget_cached_csrf()
        return self.client.get(path, **kwargs)

    def csrf(self) -> str:
        if self._token is None:
            _forget_cached_csrf()
            self._token = page_csrf_token(self.client.get("/login").get_data(as_text=True))
        return self._token

    def post(self, path: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """POST a form with a valid CSRF token (pass csrf=False to leave it out)."""
        form = dict(data or {})
        if kwargs.pop("csrf", True):
            form["csrf_token"] = self.csrf()
        _forget_cached_csrf()
        return self.client.post(path, data=form, **kwargs)


@pytest.fixture()
def console(app: Any) -> Callable[..., ConsoleSession]:
    """Log a fresh console user in: console(role="operator", tenant="acme", superadmin=False)."""
    from app.db import db
    from app.services.auth import create_user

    def login(role: str = "operator", tenant: str | None = "acme", superadmin: bool = False) -> ConsoleSession:
        email, password = f"{role}-{uuid.uuid4().hex[:10]}@example.com", "correct horse battery"
        user = create_user(db.session, email, password, role, tenant, superadmin=superadmin)
        db.session.commit()
        client = app.test_client()
        _forget_cached_csrf()
        token = page_csrf_token(client.get("/login").get_data(as_text=True))
        answer = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return ConsoleSession(client, user.id, email, role, tenant)

    return login
