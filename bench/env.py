"""The benchmark's backends: a Redis database and a SQL database of its own.

Everything here runs before any `app` module is imported, because app.config reads the
environment once. Cleanups are registered on a `contextlib.ExitStack` by the caller.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
REDIS_BASE = "redis://127.0.0.1:6379"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
#: Marks the Redis database as taken; FLUSHDB between runs must set it again.
CLAIM_KEY = "bench:claim"


@dataclass
class Backends:
    redis_url: str
    database_url: str
    tmp: Path


def claim_redis_db(url: str) -> None:
    redis.Redis.from_url(url).set(CLAIM_KEY, str(os.getpid()))


def flush_redis_db(url: str) -> None:
    """Empty the benchmark's database and keep it claimed.

    One MULTI/EXEC: the database is never seen empty, so a test session picking an empty
    database (tests/conftest.py) cannot take it and share our queues and event stream.
    """
    pipe = redis.Redis.from_url(url).pipeline(transaction=True)
    pipe.flushdb()
    pipe.set(CLAIM_KEY, str(os.getpid()))
    pipe.execute()


def _pick_redis_db(base_url: str) -> str:
    """The first empty database from 14 down (tests count down from 15; db 0 is `make run`'s)."""
    for number in range(14, 0, -1):
        url = f"{base_url}/{number}"
        client = redis.Redis.from_url(url)
        # SET NX on the claim key: two benchmarks started together do not share a database.
        if client.dbsize() == 0 and client.set(CLAIM_KEY, str(os.getpid()), nx=True):
            return url
    raise RuntimeError("no empty Redis database between 1 and 14 on " + base_url)


def _resolve_redis(tmp: Path, stack: contextlib.ExitStack) -> str:
    try:
        redis.Redis.from_url(REDIS_BASE, socket_connect_timeout=1).ping()
        url = _pick_redis_db(REDIS_BASE)
    except redis.ConnectionError:
        from app.embedded_redis import start_embedded  # reads no settings

        server = start_embedded(tmp / "redis", persist=False)
        stack.callback(server.stop)
        url = server.url.rsplit("/", 1)[0] + "/1"
        claim_redis_db(url)
    stack.callback(_flush_quietly, url)
    return url


def _flush_quietly(url: str) -> None:
    with contextlib.suppress(redis.RedisError):
        redis.Redis.from_url(url).flushdb()


def _resolve_database(kind: str, tmp: Path, stack: contextlib.ExitStack) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}"
    import psycopg

    name = f"celeriac_bench_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        from app.db import get_engine

        get_engine().dispose()
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.callback(drop)
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def prepare(kind: str, stack: contextlib.ExitStack) -> Backends:
    """Claim Redis, create the SQL database, export the environment, migrate.

    Cleanups (flush Redis, drop the database, remove temp files) go on `stack`.
    """
    tmp = Path(tempfile.mkdtemp(prefix="celeriac-bench-"))
    stack.callback(_remove_tree, tmp)
    redis_url = _resolve_redis(tmp, stack)
    database_url = _resolve_database(kind, tmp, stack)
    os.environ.update(
        REDIS_URL=redis_url,
        DATABASE_URL=database_url,
        SECRET_KEY="bench-secret",
        CELERIAC_TASK_MODULES="bench.tasks",
        CELERIAC_TRACKING="true",
    )
    from app.config import get_settings

    get_settings.cache_clear()
    _migrate()
    return Backends(redis_url, database_url, tmp)


def _migrate() -> None:
    from flask_migrate import upgrade

    from ops_ui import create_app

    app = create_app({"TESTING": True})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def mode_env(tracking: bool) -> dict[str, str]:
    """The environment of every subprocess of one mode."""
    env = os.environ.copy()
    env["CELERIAC_TRACKING"] = "true" if tracking else "false"
    return env
