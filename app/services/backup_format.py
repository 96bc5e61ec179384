"""The backup file (`flask celeriac export` / `import`): JSON lines, one record per line.

The first line is the header, the last the end line with the counts (a file without it
was cut short):

    {"kind": "header", "format": "celeriac-backup", "version": 1, "exported_at": ..., "since": ..., "tenant": ...}
    {"kind": "definition", "row": {...job_definitions columns...}}
    {"kind": "queue", "row": {...queues columns...}}
    {"kind": "queue_rate_limit", "row": {"queue": "emails", "limit": 10, "per": 60}}
    {"kind": "schedule", "row": {...job_schedules columns...}}
    {"kind": "batch", "row": {...job_batches columns...}}
    {"kind": "execution", "row": {...job_executions columns...}, "attempts": [{...job_attempts columns...}]}
    {"kind": "end", "counts": {"definition": 3, ...}}

A row holds every column under its column name, as stored: times as ISO 8601 with the
offset, JSON columns as JSON. Encrypted payloads, results and errors are the stored sealed
tokens; nothing is decrypted on the way out or in.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Table

from app.models import JobBatch, JobDefinition, JobExecution, JobSchedule, QueueSettings
from app.models.base import UTCDateTime
from app.models.job_execution import JobAttempt

FORMAT = "celeriac-backup"
VERSION = 1
HEADER = "header"
END = "end"
QUEUE_RATE_LIMIT = "queue_rate_limit"
#: Record kind -> the table its rows go to, in the order the file lists them.
TABLES: dict[str, Table] = {
    "definition": JobDefinition.__table__,
    "queue": QueueSettings.__table__,
    "schedule": JobSchedule.__table__,
    "batch": JobBatch.__table__,
    "execution": JobExecution.__table__,
}
ATTEMPTS: Table = JobAttempt.__table__
KINDS = (HEADER, *TABLES, QUEUE_RATE_LIMIT, END)


def _is_time(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, (UTCDateTime, DateTime))


def row_out(table: Table, row: Any) -> dict[str, Any]:
    """A stored row (a Core result row) as the file holds it."""
    values = dict(row._mapping)
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if name in table.c
    }


def row_in(table: Table, values: object, kind: str) -> dict[str, Any]:
    """A row of the file as the table takes it.

    Raises:
        ValueError: not an object, an unknown column, a bad time, or a missing key column.
    """
    if not isinstance(values, dict):
        raise ValueError(f"{kind}: row must be an object")
    unknown = sorted(set(values) - set(table.c.keys()))
    if unknown:
        raise ValueError(f"{kind}: unknown column(s) {', '.join(unknown)}")
    row: dict[str, Any] = {}
    for name, value in values.items():
        if value is not None and _is_time(table, name):
            if not isinstance(value, str):
                raise ValueError(f"{kind}: {name} must be an ISO 8601 time")
            try:
                value = datetime.fromisoformat(value)
            except ValueError as exc:
                raise ValueError(f"{kind}: {name} is not an ISO 8601 time: {value!r}") from exc
        row[name] = value
    for key in table.primary_key.columns:
        if table is ATTEMPTS:
            row.pop(key.name, None)  # a new id where it lands; attempt_key says which attempt it is
        elif not isinstance(row.get(key.name), str) or not row[key.name]:
            raise ValueError(f"{kind}: {key.name} is required")
    return row
