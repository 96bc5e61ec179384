"""Import a backup (app.services.backup_format) into an empty or a live database.

Never overwrites: a row whose id is already there (a definition: or whose class and tenant
are, a queue: whose name is) is skipped and counted as skipped. Two passes over the file,
each streaming (memory stays flat): the first checks every line, so a bad file imports
nothing and names its first bad line; the second imports, one transaction per BATCH lines.
If the database fails during the second pass, the batch under way is rolled back whole and
the batches before it stay: importing the same file again skips them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import redis
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from app import redis_keys
from app.errors import ValidationError
from app.services.backup_format import (
    ATTEMPTS,
    END,
    FORMAT,
    HEADER,
    QUEUE_RATE_LIMIT,
    TABLES,
    VERSION,
    row_in,
)

#: Lines imported per transaction.
BATCH = 500
PENDING = "pending"


@dataclass
class ImportReport:
    imported: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: Pending jobs imported that had been published: candidates for --requeue-pending.
    pending_ids: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        kinds = [*TABLES, QUEUE_RATE_LIMIT]
        return [f"{kind}: imported {self.imported[kind]}, skipped {self.skipped[kind]}" for kind in kinds]


@dataclass
class _Record:
    number: int
    kind: str
    row: dict[str, Any]
    attempts: list[dict[str, Any]]


def _parse(number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValidationError(f"line {number}: not JSON ({exc})") from exc
    if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
        raise ValidationError(f'line {number}: not a record (an object with a "kind")')
    return record


def _records(lines: IO[str]) -> Iterator[_Record]:
    """The file's data records, each checked; raises ValidationError naming the line."""
    ended = False
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = _parse(number, line)
        kind = record["kind"]
        if number == 1:
            if kind != HEADER or record.get("format") != FORMAT:
                raise ValidationError(f"line 1: not a Celeriac backup (no {FORMAT} header)")
            if record.get("version") != VERSION:
                raise ValidationError(f"line 1: backup format version {record.get('version')!r}; this reads {VERSION}")
            continue
        if ended:
            raise ValidationError(f"line {number}: a record after the end line")
        if kind == END:
            ended = True
            continue
        yield _record(number, kind, record)
    if not ended:
        raise ValidationError("the file has no end line: it was cut short (nothing after the last complete batch)")


def _record(number: int, kind: str, record: dict[str, Any]) -> _Record:
    try:
        if kind == QUEUE_RATE_LIMIT:
            row = record.get("row")
            if not isinstance(row, dict) or not isinstance(row.get("queue"), str):
                raise ValueError("queue_rate_limit: row must have a queue")
            if not all(isinstance(row.get(k), int) and row[k] > 0 for k in ("limit", "per")):
                raise ValueError("queue_rate_limit: limit and per must be positive integers")
            return _Record(number, kind, row, [])
        table = TABLES.get(kind)
        if table is None:
            raise ValueError(f"unknown kind {kind!r}")
        attempts = record.get("attempts") or []
        if not isinstance(attempts, list):
            raise ValueError("attempts must be a list")
        return _Record(
            number, kind, row_in(table, record.get("row"), kind), [row_in(ATTEMPTS, a, "attempt") for a in attempts]
        )
    except ValueError as exc:
        raise ValidationError(f"line {number}: {exc}") from exc


def check_file(lines: IO[str]) -> int:
    """Check every line without importing; the number of data records.

    Raises:
        ValidationError: the first bad line, by number.
    """
    return sum(1 for _ in _records(lines))


def import_file(session: Session, lines: IO[str], *, redis_client: redis.Redis | None = None) -> ImportReport:
    """Import a file `check_file` accepted (read from its start again).

    Raises:
        ValidationError: a bad line (only if the file changed since it was checked).
    """
    report = ImportReport()
    definition_ids: dict[str, str | None] = {}
    batch: list[_Record] = []
    for record in _records(lines):
        batch.append(record)
        if len(batch) >= BATCH:
            _import_batch(session, batch, report, definition_ids, redis_client)
            batch = []
    if batch:
        _import_batch(session, batch, report, definition_ids, redis_client)
    return report


def _import_batch(
    session: Session,
    batch: list[_Record],
    report: ImportReport,
    definition_ids: dict[str, str | None],
    redis_client: redis.Redis | None,
) -> None:
    """One transaction: kinds in table order, so a schedule's definition goes in first."""
    try:
        for kind, table in TABLES.items():
            records = [r for r in batch if r.kind == kind]
            if records:
                _insert_new(session, kind, table, records, report, definition_ids)
        session.commit()
    except Exception:
        session.rollback()
        raise
    for record in batch:
        if record.kind == QUEUE_RATE_LIMIT:
            _import_rate_limit(record.row, report, redis_client)


def _insert_new(
    session: Session,
    kind: str,
    table: Table,
    records: list[_Record],
    report: ImportReport,
    definition_ids: dict[str, str | None],
) -> None:
    key = "name" if kind == "queue" else "id"
    present = _present(session, kind, table, key, [r.row for r in records], definition_ids)
    rows: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for record in records:
        row = record.row
        if row[key] in present:
            report.skipped[kind] += 1
            continue
        present.add(row[key])
        if row.get("job_definition_id") is not None:
            row["job_definition_id"] = _definition_id(session, row["job_definition_id"], definition_ids)
        rows.append(row)
        attempts.extend({**attempt, "execution_id": row["id"]} for attempt in record.attempts)
        if kind == "execution" and row.get("status") == PENDING and row.get("published_at") is not None:
            report.pending_ids.append(row["id"])
        if kind == "definition":
            definition_ids[row["id"]] = row["id"]
    if rows:
        session.execute(insert(table), rows)
        report.imported[kind] += len(rows)
    if attempts:
        keys = [a["attempt_key"] for a in attempts]
        taken = set(session.scalars(select(ATTEMPTS.c.attempt_key).where(ATTEMPTS.c.attempt_key.in_(keys))))
        fresh = [a for a in attempts if a["attempt_key"] not in taken]
        if fresh:
            session.execute(insert(ATTEMPTS), fresh)


def _definition_id(session: Session, old: str, definition_ids: dict[str, str | None]) -> str | None:
    """The id here of the definition a row named: the same class may have another id
    here; a definition neither imported nor present is dropped (the column allows null)."""
    if old not in definition_ids:
        table = TABLES["definition"]
        definition_ids[old] = session.scalar(select(table.c.id).where(table.c.id == old))
    return definition_ids[old]


def _present(
    session: Session,
    kind: str,
    table: Table,
    key: str,
    rows: list[dict[str, Any]],
    definition_ids: dict[str, str | None],
) -> set[str]:
    """Keys of `rows` already in the table (for definitions: by id, or by class and tenant)."""
    column = table.c[key]
    present = set(session.scalars(select(column).where(column.in_([row[key] for row in rows]))))
    if kind != "definition":
        return present
    for row in rows:
        if row["id"] in present:
            definition_ids[row["id"]] = row["id"]
            continue
        tenant = row.get("tenant_id")
        same_tenant = table.c.tenant_id.is_(None) if tenant is None else table.c.tenant_id == tenant
        existing = session.scalar(select(table.c.id).where(table.c.job_class == row.get("job_class"), same_tenant))
        if existing is not None:
            definition_ids[row["id"]] = existing
            present.add(row["id"])
    return present


def _import_rate_limit(row: dict[str, Any], report: ImportReport, client: redis.Redis | None) -> None:
    """An API-set queue rate limit, unless the queue has one already (or no Redis was given)."""
    if client is None or not client.hsetnx(redis_keys.RATE_LIMIT_QUEUES, row["queue"], f"{row['limit']}/{row['per']}"):
        report.skipped[QUEUE_RATE_LIMIT] += 1
        return
    report.imported[QUEUE_RATE_LIMIT] += 1
