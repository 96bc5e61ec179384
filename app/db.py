"""Database handles: Flask-SQLAlchemy's `db` for the web process, plain engines elsewhere.

Workers and the recorder need no Flask app context: they open `session_scope()` on an
engine built from settings. Both share the same declarative `Base` and metadata.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, cast

from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import _app_ctx_id
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from app.config import get_settings


class Base(DeclarativeBase):
    """Declarative base shared by every model."""


def _request_or_app_context() -> int:
    """The scope of `db.session`: the request when there is one, else the app context.

    Flask lets a request reuse an app context already pushed (a test, a CLI command), and
    Flask-SQLAlchemy's default scope is the app context: every request would share one
    session, and its identity map would keep answering the row it loaded first (a job
    polled "processing" long after it completed). A session per request, removed when the
    request ends (ops_ui.create_app), reads what is committed now, as in production.
    """
    from flask import has_request_context, request

    # `request` is a proxy: its id would be the proxy's, the same for every request.
    return id(cast(Any, request)._get_current_object()) if has_request_context() else _app_ctx_id()


#: Objects keep their loaded values after a commit: an answer built from a row that was
#: just committed never reads it back (during an SQL outage that read would fail an
#: action that already happened). Code that needs fresher data refreshes explicitly.
db = SQLAlchemy(
    model_class=Base, session_options={"expire_on_commit": False, "scopefunc": _request_or_app_context}
)


def engine_options(url: str) -> dict[str, Any]:
    """Engine keyword arguments suited to the database behind `url`."""
    if url.startswith("sqlite"):
        # Several processes (web, recorder, CLI) share the file; wait a little for locks
        # instead of failing at once, but not so long that a request outlives its client
        # (a dispatch that answers after the client gave up would be a ghost): past 5 s the
        # API answers 503 and the recorder retries.
        return {"connect_args": {"timeout": 5}}
    # A database that does not answer fails a request in seconds (503), not minutes.
    return {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5, "connect_args": {"connect_timeout": 5}}


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers and the recorder's writer work at the same time on SQLite.

    synchronous=FULL: a commit returns once the WAL is on disk (fsync), as PostgreSQL's
    does by default, so an accepted job survives a power cut and not only a crash (NORMAL
    syncs at checkpoints only). It costs one fsync per commit; the recorder commits in
    batches, and docs/performance.md prints the machine's fsync time beside dispatch's.
    """
    module = type(dbapi_connection).__module__
    if not module.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@lru_cache(maxsize=4)
def _engine(url: str, pid: int) -> Engine:
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url[len("sqlite:///") :]) or ".", exist_ok=True)
    return create_engine(url, **engine_options(url))


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: settings), one per process so forks get their own."""
    return _engine(url or get_settings().database_url, os.getpid())


@lru_cache(maxsize=8)
def _session_factory(engine: Engine) -> sessionmaker[Session]:
    # One per engine: each sessionmaker makes a Session subclass, which SQLAlchemy's class-level
    # event listeners then have to join (about 0.1 ms a call, on every dispatch).
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = _session_factory(get_engine(url))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
