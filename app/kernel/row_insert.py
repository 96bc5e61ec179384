"""Pending job rows into SQL quickly: a Core INSERT, not the ORM's unit of work.

One dispatch is one INSERT statement. Many (a batch, `dispatch_many`) are one executemany
on SQLite (sqlite3's loop runs in C) and, on PostgreSQL, a COPY: the fastest way in, about
half the time of a multi-row INSERT for 10,000 rows, each of which updates a dozen indexes.
Values are stored as the ORM stores them (JSON columns: Python None as JSON null), converted
by SQLAlchemy's own bind processors for each column, once per distinct object: a batch's
rows share their message header, tags and timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, insert

from app.models import JobExecution

TABLE = JobExecution.__table__
#: Rows from which PostgreSQL gets a COPY rather than an INSERT.
COPY_FROM_ROWS = 50
#: JSON columns, whose values COPY needs as JSON text.
_JSON_COLUMNS = frozenset(column.name for column in TABLE.columns if isinstance(column.type, JSON))


def insert_rows(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` (each with the same keys) in the connection's transaction."""
    if not rows:
        return
    if connection.dialect.name == "postgresql" and len(rows) >= COPY_FROM_ROWS:
        _copy(connection, rows)
    elif connection.dialect.name == "sqlite" and len(rows) >= COPY_FROM_ROWS:
        _executemany(connection, rows)
    else:
        connection.execute(insert(TABLE), list(rows))


def _executemany(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """sqlite3's executemany, each value converted by its column's SQLAlchemy bind processor."""
    columns = list(rows[0])
    dialect = connection.dialect
    processors = [TABLE.c[name].type._cached_bind_processor(dialect) for name in columns]
    converters = [_Memo(processor) if processor is not None else None for processor in processors]
    params = []
    for row in rows:
        values = list(row.values())
        for i, convert in enumerate(converters):
            if convert is not None:
                values[i] = convert(values[i])
        params.append(values)
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    raw: Any = connection.connection.dbapi_connection
    cursor = raw.cursor()
    try:
        cursor.executemany(f"INSERT INTO {TABLE.name} ({names}) VALUES ({marks})", params)
    finally:
        cursor.close()


class _Memo:
    """A bind processor that converts each distinct object once (by identity)."""

    def __init__(self, processor: Callable[[Any], Any]) -> None:
        self.processor = processor
        self.seen: dict[int, tuple[Any, Any]] = {}

    def __call__(self, value: Any) -> Any:
        known = self.seen.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        converted = self.processor(value)
        self.seen[id(value)] = (value, converted)
        return converted


def _copy(connection: Connection, rows: Sequence[dict[str, Any]]) -> None:
    columns = list(rows[0])
    json_at = [i for i, name in enumerate(columns) if name in _JSON_COLUMNS]
    dumps = _Memo(json.dumps)
    raw: Any = connection.connection.dbapi_connection
    names = ", ".join(columns)
    with raw.cursor() as cursor, cursor.copy(f"COPY {TABLE.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            values = list(row.values())
            for i in json_at:
                values[i] = dumps(values[i])
            copy.write_row(values)
