"""A batch of job rows loaded in bulk, changed in memory, saved in bulk (the recorder's unit of work).

`EventApplier` (app.kernel.apply) folds events into these rows; at the end of a batch the
new and changed rows are written with one executemany per shape, the failed ones are
fingerprinted into their groups and the terminal ones added to the per-minute stats,
all in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from app.kernel.aggregates import Aggregator, wait_ms
from app.kernel.failure_groups import NewFailure
from app.kernel.fingerprint import fingerprint
from app.models import ExecutionStatus, JobAttempt, JobExecution

#: Largest IN (...) list per query; well under SQLite's and PostgreSQL's limits.
_CHUNK = 500

_EXECUTIONS: Table = JobExecution.__table__
_ATTEMPTS: Table = JobAttempt.__table__
_RETRYING = ExecutionStatus.RETRYING.value


class Row:
    """One table row as plain attributes, written back with Core statements.

    The ORM's per-attribute bookkeeping cost the recorder more CPU than the SQL itself.
    A column never set reads as None, like a new ORM object before its flush.
    """

    table: ClassVar[Table]
    columns: ClassVar[frozenset[str]]
    #: Columns whose None is stored as a value (JSON `null`), not left to the default.
    none_stored: ClassVar[frozenset[str]]

    def __init__(self, values: Mapping[Any, Any], loaded: bool = False) -> None:
        self.__dict__.update(values)
        self.__dict__["_loaded"] = dict(values) if loaded else None

    def __init_subclass__(cls, table: Table, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.table = table
        cls.columns = frozenset(column.key for column in table.columns)
        cls.none_stored = frozenset(column.key for column in table.columns if column.type.should_evaluate_none)

    def __getattr__(self, name: str) -> Any:  # only reached for attributes never set
        if name in self.columns:
            return None
        raise AttributeError(name)

    if TYPE_CHECKING:

        def __setattr__(self, name: str, value: Any) -> None: ...

    @property
    def is_new(self) -> bool:
        return self.__dict__["_loaded"] is None

    def _values(self) -> dict[str, Any]:
        values = {k: v for k, v in self.__dict__.items() if k != "_loaded"}
        unknown = values.keys() - self.columns
        if unknown:
            raise ValueError(f"not columns of {self.table.name}: {sorted(unknown)}")
        return values

    def insert_values(self) -> dict[str, Any]:
        """What an INSERT sets: like the ORM, a None is left to the column default."""
        return {k: v for k, v in self._values().items() if v is not None or k in self.none_stored}

    def changes(self) -> dict[str, Any]:
        """Columns that differ from the loaded row (all an UPDATE needs to set)."""
        loaded = self.__dict__["_loaded"]
        return {k: v for k, v in self._values().items() if k not in loaded or loaded[k] != v}


class ExecutionRow(Row, table=_EXECUTIONS):
    """A `job_executions` row."""


class AttemptRow(Row, table=_ATTEMPTS):
    """A `job_attempts` row."""


@dataclass
class BatchState:
    """Rows touched by one batch, loaded once and written in one transaction."""

    executions: dict[str, ExecutionRow] = field(default_factory=dict)
    attempts: dict[str, AttemptRow] = field(default_factory=dict)
    open_attempts: dict[str, list[AttemptRow]] = field(default_factory=dict)
    #: Rows this batch made failed, for their failure groups (F4).
    failures: list[NewFailure] = field(default_factory=list)


def load_rows(conn: Connection, ids: Sequence[str], lock: bool) -> BatchState:
    state = BatchState()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        query = select(_EXECUTIONS).where(_EXECUTIONS.c.id.in_(chunk))
        if lock:
            query = query.with_for_update()
        for values in conn.execute(query).mappings():
            state.executions[values["id"]] = ExecutionRow(values, loaded=True)
        for values in conn.execute(select(_ATTEMPTS).where(_ATTEMPTS.c.execution_id.in_(chunk))).mappings():
            attempt = AttemptRow(values, loaded=True)
            state.attempts[attempt.attempt_key] = attempt
            if attempt.finished_at is None:
                state.open_attempts.setdefault(attempt.execution_id, []).append(attempt)
    return state


def _by_shape(params: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Parameter sets grouped by the columns they set: one executemany per shape."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for values in params:
        groups.setdefault(frozenset(values), []).append(values)
    return list(groups.values())


def _insert(conn: Connection, table: Table, rows: Iterable[Row]) -> None:
    for params in _by_shape(row.insert_values() for row in rows):
        conn.execute(insert(table), params)


def _update(conn: Connection, table: Table, rows: Iterable[Row]) -> None:
    """UPDATE by primary key, changed columns only; the table's `onupdate` fills the rest."""
    (key,) = table.primary_key.columns
    statement = update(table).where(key == bindparam("_pk"))
    changed = ((row, row.changes()) for row in rows)
    for params in _by_shape({**changes, "_pk": getattr(row, key.key)} for row, changes in changed if changes):
        conn.execute(statement, params)


def save_rows(conn: Connection, state: BatchState) -> None:
    """Executions before attempts (the foreign key), new rows before changed ones."""
    executions = state.executions.values()
    attempts = state.attempts.values()
    _insert(conn, _EXECUTIONS, [row for row in executions if row.is_new])
    _update(conn, _EXECUTIONS, [row for row in executions if not row.is_new])
    _insert(conn, _ATTEMPTS, [row for row in attempts if row.is_new])
    _update(conn, _ATTEMPTS, [row for row in attempts if not row.is_new])


#: Kinds of event after which a job may have finished for good.
FINAL_KINDS = frozenset({"ok", "fail", "cancel", "reject"})


@dataclass(frozen=True)
class Finished:
    """A job an applied batch left terminal, with what composition follow-ups need."""

    id: str
    status: str
    batch_id: str | None = None
    chain_id: str | None = None
    chain_step: int | None = None
    unique_key: str | None = None
    tenant_id: str | None = None
    job_class: str | None = None


def fingerprint_failed(state: BatchState, row: ExecutionRow) -> None:
    """Called once per row (when it becomes failed), so its group counts it once."""
    found = fingerprint(row.exception_type, row.error_message, row.exception_trace, row.job_class)
    row.fingerprint = found.key
    failed_at = row.failed_at or row.updated_at or datetime.now(UTC)
    state.failures.append(
        NewFailure(row.id, row.tenant_id, row.job_class, row.queue, found, row.error_message, failed_at)
    )


def aggregate(state: BatchState, conn: Connection) -> None:
    """Add what this batch ended to the per-minute stats (M1), once each.

    An execution is counted (with its runtime and its queue wait) by the batch that makes
    it terminal; an attempt that ended in `retrying` by the batch that closes it.
    """
    aggregator = Aggregator()
    for row in state.executions.values():
        loaded = row.__dict__["_loaded"]
        if loaded is not None and ExecutionStatus(loaded["status"]).is_terminal:
            continue  # counted when it became terminal
        status = ExecutionStatus(row.status)
        if not status.is_terminal:
            continue
        at = getattr(row, f"{status.value}_at") or row.updated_at
        aggregator.add(
            at,
            row.tenant_id,
            row.queue,
            row.job_class,
            status.value,
            row.execution_time_ms,
            row.memory_usage_mb,
            wait_ms(row.created_at, row.eta, row.started_at),
        )
    for attempt in state.attempts.values():
        if attempt.status != _RETRYING or attempt.finished_at is None:
            continue
        loaded = attempt.__dict__["_loaded"]
        if loaded is not None and loaded["finished_at"] is not None:
            continue  # counted when it closed
        row = state.executions[attempt.execution_id]
        aggregator.retry(attempt.finished_at, row.tenant_id, row.queue, row.job_class)
    aggregator.flush(conn)
