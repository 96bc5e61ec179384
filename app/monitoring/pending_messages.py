"""A queue's pending messages in the order a worker takes them (the console's queue page).

kombu's Redis transport keeps one list per priority step ("emails", "emails:1", ...; named
by `queue_stats.broker_queue_keys`), publishes with LPUSH and consumes with BRPOP over the
lists in step order: step 0 (Celeriac priority 9) first, each list from its right end. So
the line is: list of step 0 right to left, then step 1, and so on. Only headers are read,
never bodies (a sealed payload stays sealed); the job's row says whose it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import JobExecution
from app.monitoring.queue_stats import broker_queue_keys
from celeriac import header
from celeriac.priority import from_broker_priority

#: Messages shown per page.
PAGE_SIZE = 100
#: Most messages read for one page: a tenant whose messages are sparse in a long queue
#: gets a shorter page and a "next" link, never an unbounded scan.
MAX_SCAN = 2_000


@dataclass(frozen=True)
class PendingMessage:
    """One message waiting in the queue, as the queue page lists it."""

    #: Place in line, from 1: the message a worker takes next is 1.
    position: int
    job_id: str | None
    job_class: str
    #: Celeriac's scale (9 highest).
    priority: int
    #: Whose job it is: the row's tenant, else the message's header, else None (unknown).
    tenant_id: str | None
    status: str | None
    created_at: datetime | None
    published_at: datetime | None
    eta: str | None
    group_id: str | None


@dataclass(frozen=True)
class MessagePage:
    messages: list[PendingMessage]
    #: Messages in the queue's lists right now, every tenant's.
    depth: int
    offset: int
    #: Where the next page starts (a position in line, from 0); None on the last page.
    next_offset: int | None


def read_in_order(
    redis_client: Any, queue: str, offset: int, count: int, options: Mapping[str, Any] | None = None
) -> list[tuple[int, bytes]]:
    """Raw messages at places `offset` .. `offset + count - 1` in line (from 0), with their place.

    Indexed from each list's right end, so messages published meanwhile (LPUSH, on the left)
    do not shift what this reads; messages taken meanwhile do, by as many as were taken.
    """
    keys = broker_queue_keys(queue, options)
    pipe = redis_client.pipeline(transaction=False)
    for key in keys:
        pipe.llen(key)
    lengths = [int(n) for n in pipe.execute()]
    found: list[tuple[int, bytes]] = []
    before = 0
    for key, length in zip(keys, lengths, strict=True):
        wanted = count - len(found)
        if wanted <= 0:
            break
        if offset >= before + length:
            before += length
            continue
        skip = max(0, offset - before)  # counted from the right end
        take = min(length - skip, wanted)
        raw = redis_client.lrange(key, -(skip + take), -(skip + 1))
        found.extend((before + skip + i, item) for i, item in enumerate(reversed(raw)))
        before += length
    return found


def _headers(raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {}, {}
    if not isinstance(message, dict):
        return {}, {}
    headers, properties = message.get("headers"), message.get("properties")
    return (headers if isinstance(headers, dict) else {}), (properties if isinstance(properties, dict) else {})


def _at(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def _describe(place: int, raw: bytes, row: Any) -> PendingMessage:
    headers, properties = _headers(raw)
    own = header.read(headers) or {}
    priority = properties.get("priority")
    return PendingMessage(
        position=place + 1,
        job_id=str(headers["id"]) if headers.get("id") else None,
        job_class=str(headers.get("task") or (row.job_class if row else "unknown")),
        priority=from_broker_priority(priority if isinstance(priority, int) else None),
        tenant_id=row.tenant_id if row is not None else own.get("tenant"),
        status=row.status if row is not None else None,
        created_at=row.created_at if row is not None else None,
        published_at=_at(header.published_at(headers)),
        eta=headers.get("eta") if isinstance(headers.get("eta"), str) else None,
        group_id=headers.get("group") if isinstance(headers.get("group"), str) else None,
    )


def _rows(session: Session, raws: Sequence[bytes]) -> dict[str, Any]:
    ids = [str(h["id"]) for h, _ in map(_headers, raws) if h.get("id")]
    if not ids:
        return {}
    query = select(
        JobExecution.id, JobExecution.tenant_id, JobExecution.status, JobExecution.created_at, JobExecution.job_class
    ).where(JobExecution.id.in_(ids))
    return {row.id: row for row in session.execute(query)}


def pending_messages(
    session: Session,
    redis_client: Any,
    queue: str,
    tenant_id: str | None,
    *,
    offset: int = 0,
    limit: int = PAGE_SIZE,
    default_tenant: str = "default",
    options: Mapping[str, Any] | None = None,
) -> MessagePage:
    """Up to `limit` of `queue`'s messages from place `offset` on, as `tenant_id` may see them.

    A tenant sees its own jobs only (a message with no row counts as `default_tenant`'s, as
    the recorder files it); None (a superadmin) sees every message.
    """
    offset = max(0, offset)
    depth = sum(_lengths(redis_client, queue, options))
    shown: list[PendingMessage] = []
    scanned = 0
    while len(shown) < limit and scanned < MAX_SCAN and offset + scanned < depth:
        chunk = read_in_order(redis_client, queue, offset + scanned, min(limit, MAX_SCAN - scanned), options)
        if not chunk:
            break
        rows = _rows(session, [raw for _, raw in chunk])
        for place, raw in chunk:
            scanned = place + 1 - offset
            message = _describe(place, raw, rows.get(str(_headers(raw)[0].get("id"))))
            if tenant_id is None or (message.tenant_id or default_tenant) == tenant_id:
                shown.append(message)
                if len(shown) == limit:
                    break
    end = offset + scanned
    return MessagePage(shown, depth, offset, end if end < depth else None)


def _lengths(redis_client: Any, queue: str, options: Mapping[str, Any] | None) -> list[int]:
    pipe = redis_client.pipeline(transaction=False)
    for key in broker_queue_keys(queue, options):
        pipe.llen(key)
    return [int(n) for n in pipe.execute()]
