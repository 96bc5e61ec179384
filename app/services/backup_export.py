"""Export definitions, schedules, queue settings, batches and executions as JSON lines.

Streams: rows are read in pages of PAGE by keyset (created_at, id), each page's attempts in
one query, and written as they come, so memory stays flat however long the history.
`since` and `tenant` narrow the history (executions and batches); definitions (the
tenant's own and the global ones), schedules (the tenant's) and queue settings (shared by
every tenant) are always exported whole. See app.services.backup_format for the lines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

import redis
from sqlalchemy import Table, or_, select, tuple_
from sqlalchemy.orm import Session

from app import redis_keys
from app.services.backup_format import (
    ATTEMPTS,
    END,
    FORMAT,
    HEADER,
    QUEUE_RATE_LIMIT,
    TABLES,
    VERSION,
    row_out,
)

#: Rows read per query.
PAGE = 1000


@dataclass
class ExportReport:
    counts: Counter[str] = field(default_factory=Counter)


def export(
    session: Session,
    out: IO[str],
    *,
    since: datetime | None = None,
    tenant: str | None = None,
    redis_client: redis.Redis | None = None,
) -> ExportReport:
    """Write the backup to `out`; the counts of what was written, by kind."""
    report = ExportReport()

    def write(record: dict[str, Any]) -> None:
        out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")

    write(
        {
            "kind": HEADER,
            "format": FORMAT,
            "version": VERSION,
            "exported_at": datetime.now(UTC).isoformat(),
            "since": since.isoformat() if since else None,
            "tenant": tenant,
        }
    )
    for kind, table in TABLES.items():
        for record in _records(session, kind, table, since, tenant):
            write(record)
            report.counts[kind] += 1
        if kind == "queue" and redis_client is not None:
            for record in _rate_limits(redis_client):
                write(record)
                report.counts[QUEUE_RATE_LIMIT] += 1
    write({"kind": END, "counts": dict(report.counts)})
    return report


def _filters(kind: str, table: Table, since: datetime | None, tenant: str | None) -> list[Any]:
    filters: list[Any] = []
    if tenant is not None and "tenant_id" in table.c:
        # A tenant's own definitions and the global ones it runs with.
        own = table.c.tenant_id == tenant
        filters.append(or_(own, table.c.tenant_id.is_(None)) if kind == "definition" else own)
    if since is not None and kind in ("execution", "batch"):
        filters.append(table.c.created_at >= since)
    return filters


def _records(
    session: Session, kind: str, table: Table, since: datetime | None, tenant: str | None
) -> Iterator[dict[str, Any]]:
    key = table.c.name if kind == "queue" else table.c.id
    order = [table.c.created_at, key] if "created_at" in table.c else [key]
    last: tuple[Any, ...] | None = None
    while True:
        query = select(table).where(*_filters(kind, table, since, tenant)).order_by(*order).limit(PAGE)
        if last is not None:
            query = query.where(tuple_(*order) > tuple_(*last))
        rows = list(session.execute(query))
        if not rows:
            return
        attempts = _attempts(session, [row.id for row in rows]) if kind == "execution" else {}
        for row in rows:
            record: dict[str, Any] = {"kind": kind, "row": row_out(table, row)}
            if kind == "execution":
                record["attempts"] = attempts.get(row.id, [])
            yield record
        last = tuple(getattr(rows[-1], column.name) for column in order)
        session.expire_all()


def _attempts(session: Session, execution_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    query = (
        select(ATTEMPTS)
        .where(ATTEMPTS.c.execution_id.in_(execution_ids))
        .order_by(ATTEMPTS.c.execution_id, ATTEMPTS.c.number)
    )
    for row in session.execute(query):
        values = row_out(ATTEMPTS, row)
        values.pop("id", None)
        found.setdefault(row.execution_id, []).append(values)
    return found


def _rate_limits(client: redis.Redis) -> Iterator[dict[str, Any]]:
    """Queue rate limits set through the API (configured ones live in the environment)."""
    stored: dict[bytes, bytes] = client.hgetall(redis_keys.RATE_LIMIT_QUEUES)  # type: ignore[assignment]
    for queue, raw in sorted(stored.items()):
        limit, _, per = raw.decode().partition("/")
        if limit.isdigit() and per.isdigit():
            yield {"kind": QUEUE_RATE_LIMIT, "row": {"queue": queue.decode(), "limit": int(limit), "per": int(per)}}
