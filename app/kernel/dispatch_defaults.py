"""Job definitions and queue settings as dispatch reads them: kept per process, checked per dispatch.

Every dispatch needs its job's definition (J3) and its queue's settings (J13); reading them
from SQL was two of a dispatch's round trips. They change rarely. Any SQLAlchemy session in
this process that writes either table (the definitions service, queue settings, the start-up
sync, a backup import, a test's own edit) calls `changed()` once it has committed: a new
random token in Redis, and this process's copies dropped (the session events at the end of
this module watch for it). A dispatch reads the token (one GET, about 0.05 ms) and drops
its copies when the token moved, so an edit reaches every process's next dispatch:
"is_active: false" refuses the very next dispatch anywhere, and a queue made `encrypted`
gets no payload in clear after the edit answered. A time-to-live would cost nothing per
dispatch but leave that window open (a second of clear payloads on a queue just made
encrypted), so the token it is. The token is random rather than a counter, so Redis losing
its data cannot bring an old value back. Copies also expire after MAX_AGE_S, for rows
changed without SQLAlchemy (by hand in psql).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app import redis_keys
from app.config import get_settings
from app.kernel.queue_defaults import QueueDefaults, queue_defaults
from app.models import JobDefinition
from app.models.queue_settings import QueueSettings
from app.redis_client import get_quick_redis

logger = logging.getLogger(__name__)

#: Seconds a copy is kept even if the token never moves (SQL edited by hand).
MAX_AGE_S = 60.0


@dataclass(frozen=True)
class DefinitionValues:
    """A job definition row as dispatch uses it, detached from any session."""

    id: str
    job_class: str
    tenant_id: str | None
    default_queue: str
    priority: int
    max_attempts: int
    timeout: int
    is_active: bool
    tags: list[str] | None

    @classmethod
    def of(cls, row: JobDefinition) -> DefinitionValues:
        return cls(
            id=row.id,
            job_class=row.job_class,
            tenant_id=row.tenant_id,
            default_queue=row.default_queue,
            priority=row.priority,
            max_attempts=row.max_attempts,
            timeout=row.timeout,
            is_active=row.is_active,
            tags=list(row.tags) if row.tags is not None else None,
        )


class DispatchDefaults:
    """This process's copies, valid for one token (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: bytes | None = None
        self._loaded_at = 0.0
        #: Keyed by database too: a process (a test run) may use several.
        self._definitions: dict[tuple[Any, str, str | None], DefinitionValues | None] = {}
        self._queues: dict[tuple[Any, str], QueueDefaults] = {}

    def check(self, redis: Any) -> bool:
        """Drop the copies if the token moved or they are old; False when Redis cannot say
        (the caller then reads SQL itself)."""
        try:
            token = redis.get(redis_keys.DISPATCH_DEFAULTS_TOKEN)
        except Exception as exc:  # Redis boundary: dispatch reads SQL, and will say if the broker is down
            logger.debug("Dispatch defaults: token unreadable (%s); reading SQL", exc)
            return False
        self.adopt(token)
        return True

    def adopt(self, token: bytes | None) -> bool:
        """Drop the copies unless they belong to `token` and are young; whether they were dropped."""
        now = time.monotonic()
        with self._lock:
            if token != self._token or now - self._loaded_at > MAX_AGE_S:
                self._token, self._loaded_at = token, now
                self._definitions, self._queues = {}, {}
                return True
        return False

    def definition(self, session: Session, job_class: str, tenant_id: str | None) -> DefinitionValues | None:
        key = (_database(session), job_class, tenant_id)
        try:
            return self._definitions[key]
        except KeyError:
            pass
        token = self._token
        found = find_definition_values(session, job_class, tenant_id)
        with self._lock:
            if token == self._token:  # not dropped while SQL answered
                self._definitions[key] = found
        return found

    def queue(self, session: Session, name: str) -> QueueDefaults:
        key = (_database(session), name)
        try:
            return self._queues[key]
        except KeyError:
            pass
        token = self._token
        found = queue_defaults(session, name)
        with self._lock:
            if token == self._token:
                self._queues[key] = found
        return found

    def forget(self) -> None:
        with self._lock:
            self._token, self._definitions, self._queues = None, {}, {}


def _database(session: Session) -> Any:
    """Which database `session` reads (its URL)."""
    bind: Any = session.get_bind()
    return bind.url if hasattr(bind, "url") else bind.engine.url


_defaults = DispatchDefaults()


class _Uncached:
    """Straight from SQL: when the token cannot be read."""

    @staticmethod
    def definition(session: Session, job_class: str, tenant_id: str | None) -> DefinitionValues | None:
        return find_definition_values(session, job_class, tenant_id)

    @staticmethod
    def queue(session: Session, name: str) -> QueueDefaults:
        return queue_defaults(session, name)


class PendingCheck:
    """The token's GET sent now, its answer read later (`finish`): a dispatch resolves with the
    copies meanwhile, so the round trip costs nothing unless they turn out stale. A context
    manager: a dispatch refused before `finish` closes the connection it borrowed."""

    def __init__(self, redis: Any) -> None:
        self._pool = redis.connection_pool
        self._connection: Any = None
        try:
            connection = self._pool.get_connection()
            try:
                connection.send_command("GET", redis_keys.DISPATCH_DEFAULTS_TOKEN)
            except BaseException:
                self._pool.release(connection)
                raise
            self._connection = connection
        except Exception as exc:  # Redis boundary: `finish` says to read SQL
            logger.debug("Dispatch defaults: token unreadable (%s); reading SQL", exc)

    @property
    def defaults(self) -> DispatchDefaults:
        """The copies as they stand, to resolve with until `finish` says otherwise."""
        return _defaults

    def finish(self) -> DispatchDefaults | _Uncached | None:
        """None when the copies were current; else what to resolve with again."""
        connection, self._connection = self._connection, None
        if connection is None:
            return _Uncached()
        try:
            token = connection.read_response()
        except Exception as exc:  # Redis boundary, as in __init__
            connection.disconnect()
            logger.debug("Dispatch defaults: token unreadable (%s); reading SQL", exc)
            return _Uncached()
        finally:
            self._pool.release(connection)
        return _defaults if _defaults.adopt(token) else None

    def __enter__(self) -> PendingCheck:
        return self

    def __exit__(self, *_: Any) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:  # its answer is still to come: not reusable as it is
            connection.disconnect()
            self._pool.release(connection)


def current(redis: Any) -> DispatchDefaults | _Uncached:
    """The definitions and queue settings to dispatch with now (one Redis GET)."""
    return _defaults if _defaults.check(redis) else _Uncached()


def changed() -> None:
    """Definitions or queue settings changed (after the commit): every process re-reads them.

    Best effort on Redis: if it is down, other processes see the change after MAX_AGE_S
    (and Redis being down stops their dispatches anyway).
    """
    _defaults.forget()
    try:
        redis = get_quick_redis(get_settings().redis_url)
        redis.set(redis_keys.DISPATCH_DEFAULTS_TOKEN, uuid.uuid4().hex)
    except Exception as exc:  # Redis boundary: the row is saved; other processes catch up later
        logger.warning(
            "Dispatch defaults changed but not announced (%s); other processes see it within %ss", exc, MAX_AGE_S
        )


def find_definition_values(session: Session, job_class: str, tenant_id: str | None) -> DefinitionValues | None:
    # Late import: dispatching imports this module's types.
    from app.kernel.dispatching import find_definition

    row = find_definition(session, job_class, tenant_id)
    return DefinitionValues.of(row) if row is not None else None


# -- watching this process's sessions ----------------------------------------------------------
#: Tables whose rows dispatch keeps copies of.
_WATCHED = frozenset({JobDefinition.__tablename__, QueueSettings.__tablename__})
#: `Session.info` key: this transaction wrote a watched table.
_WROTE = "celeriac_dispatch_defaults_written"


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, (JobDefinition, QueueSettings)):
            session.info[_WROTE] = True
            return


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in _WATCHED:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        changed()


@event.listens_for(Session, "after_rollback")
def _forget_write(session: Session) -> None:
    session.info.pop(_WROTE, None)
