"""Idempotency keys (R2): a request repeated with the same key gets the first answer.

Crash-safe in three steps: `claim` commits a row of its own (status `in_progress`, with
the ids the request will create chosen up front) before any work; the caller then does
the work with those ids and `complete`s the row with its answer; a failed request
`release`s it. A claim left behind by a process that died is taken over after `LEASE`
by a repeat, which runs again with the same ids, so the primary keys of the rows it
creates stop a second copy. Keys are kept `KEY_TTL` (purged by retention).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import Conflict, ValidationError
from app.models import IdempotencyKey

#: How long a key is remembered after its first use.
KEY_TTL = timedelta(hours=24)
#: A claim still `in_progress` this long after its last touch belongs to a request that
#: died (requests answer within seconds); a repeat may then take it over.
LEASE = timedelta(seconds=60)
#: Longest key accepted (the column's width).
MAX_KEY_CHARS = 255

IN_PROGRESS = "in_progress"
DONE = "done"


@dataclass(frozen=True)
class Claim:
    """This request owns the key: do the work with `resource_ids`, then complete or release."""

    row_id: int
    resource_ids: dict[str, Any]
    #: When this request took the key; a later takeover changes it, and so the row's owner.
    taken_at: datetime
    #: True when a request that died held the key: its work may be (partly) done already.
    resumed: bool = False


@dataclass(frozen=True)
class Replay:
    """The key was used before with the same body: answer exactly this."""

    status: int
    body: Any


def check_key(key: str) -> None:
    """Raises: ValidationError unless `key` is 1-255 printable ASCII characters."""
    if not 0 < len(key) <= MAX_KEY_CHARS or not all(" " <= ch <= "~" for ch in key):
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters")


def request_hash(body: Any) -> str:
    """SHA-256 of `body` as canonical JSON: key order and spacing do not matter."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(
    session: Session,
    *,
    tenant_id: str,
    endpoint: str,
    key: str,
    body_hash: str,
    resource_ids: dict[str, Any],
    now: datetime | None = None,
) -> Claim | Replay:
    """Take the key for this request (committed at once), or say what to answer instead.

    Args:
        resource_ids: the ids this request will create, used unless a dead claim's are.

    Raises:
        ValidationError: the key was used with another body (on this endpoint).
        Conflict: a request with this key is still being handled.
    """
    now = now or datetime.now(UTC)
    for _ in range(3):  # a concurrent first use or expiry can change the row under us
        row = _find(session, tenant_id, endpoint, key)
        if row is None:
            created = _insert(session, tenant_id, endpoint, key, body_hash, resource_ids, now)
            if created is not None:
                return created
            continue
        if row.created_at <= now - KEY_TTL:
            if _renew_expired(session, row, body_hash, resource_ids, now):
                return Claim(row.id, resource_ids, now)
            continue
        return _existing(session, row, body_hash, now)
    raise Conflict("a request with this Idempotency-Key is being handled; try again")


def _find(session: Session, tenant_id: str, endpoint: str, key: str) -> IdempotencyKey | None:
    query = select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.endpoint == endpoint, IdempotencyKey.key == key
    )
    # Fresh values, not an object this session loaded before.
    return session.scalars(query.execution_options(populate_existing=True)).first()


def _insert(
    session: Session,
    tenant_id: str,
    endpoint: str,
    key: str,
    body_hash: str,
    resource_ids: dict[str, Any],
    now: datetime,
) -> Claim | None:
    """The new claim, or None when a concurrent request inserted the key first."""
    row = IdempotencyKey(
        tenant_id=tenant_id,
        endpoint=endpoint,
        key=key,
        request_hash=body_hash,
        status=IN_PROGRESS,
        resource_ids=resource_ids,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return None
    return Claim(row.id, resource_ids, now)


def _renew_expired(
    session: Session, row: IdempotencyKey, body_hash: str, resource_ids: dict[str, Any], now: datetime
) -> bool:
    """Reuse a key past its TTL that retention has not purged yet, as if it were new."""
    renewed = session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == row.id, IdempotencyKey.created_at <= now - KEY_TTL)
        .values(
            request_hash=body_hash,
            status=IN_PROGRESS,
            resource_ids=resource_ids,
            response_status=None,
            response_body=None,
            created_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(renewed.rowcount)  # type: ignore[attr-defined]


def _existing(session: Session, row: IdempotencyKey, body_hash: str, now: datetime) -> Claim | Replay:
    if row.request_hash != body_hash:
        raise ValidationError("this Idempotency-Key was already used with a different body")
    if row.status == DONE and row.response_status is not None:
        return Replay(row.response_status, row.response_body)
    if row.updated_at > now - LEASE:
        raise Conflict("a request with this Idempotency-Key is still being handled; try again shortly")
    # The request that claimed the key died: take its claim over, with its ids.
    taken = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == row.id,
            IdempotencyKey.status == IN_PROGRESS,
            IdempotencyKey.updated_at <= now - LEASE,
        )
        .values(updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if not taken.rowcount:  # type: ignore[attr-defined]
        raise Conflict("a request with this Idempotency-Key is still being handled; try again shortly")
    return Claim(row.id, dict(row.resource_ids or {}), now, resumed=True)


def complete(session: Session, claimed: Claim, status: int, body: Any) -> None:
    """Store the answer for repeats. Not committed: the caller commits it with its own writes."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == claimed.row_id)
        .values(status=DONE, response_status=status, response_body=body, updated_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )


def release(session: Session, claimed: Claim) -> None:
    """Forget the claim of a request that failed, so that a retry runs afresh (committed).

    A claim another request took over meanwhile is theirs now and stays.
    """
    session.rollback()  # the failed request's own writes must not be committed with this
    session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.id == claimed.row_id,
            IdempotencyKey.status == IN_PROGRESS,
            IdempotencyKey.updated_at == claimed.taken_at,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete keys older than KEY_TTL; returns how many (the caller commits)."""
    cutoff = (now or datetime.now(UTC)) - KEY_TTL
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff).execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
