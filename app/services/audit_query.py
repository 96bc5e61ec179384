"""Reading the audit log: filters, keyset pages on (created_at, id), readable actors (U1).

Writing stays in app.services.audit; this module only reads, newest first, through the
(tenant_id, created_at) index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.errors import ValidationError
from app.kernel.cursors import decode_position, encode_position
from app.models import ApiToken, AuditLog, User

DEFAULT_PAGE = 50
MAX_PAGE = 200
#: Outcomes the console offers as filters (any other recorded value still filters exactly).
OUTCOMES = ("ok", "denied", "error")


@dataclass(frozen=True)
class AuditFilter:
    #: None: every tenant (superadmin).
    tenant_id: str | None
    actor: str | None = None
    #: An action, or a prefix ending in "." ("job." matches job.retry, job.cancel ...).
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def encode_cursor(row: AuditLog) -> str:
    return encode_position(row.created_at, row.id)


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """Raises: ValidationError if the cursor was not made by `encode_cursor`."""
    hint = "use the link to the next page"
    created, (row_id,) = decode_position(cursor, 2, hint)
    if not row_id.isdigit():
        raise ValidationError(f"cursor is not valid; {hint}")
    return created, int(row_id)


def list_entries(
    session: Session, flt: AuditFilter, limit: int = DEFAULT_PAGE, cursor: str | None = None
) -> tuple[list[AuditLog], str | None]:
    """Audit rows matching `flt`, newest first, and the cursor of the next page (or None).

    Raises:
        ValidationError: bad limit or cursor.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be from 1 to {MAX_PAGE}")
    query = select(AuditLog)
    if flt.tenant_id is not None:
        query = query.where(AuditLog.tenant_id == flt.tenant_id)
    if flt.actor:
        query = query.where(AuditLog.actor == flt.actor)
    if flt.action:
        if flt.action.endswith("."):
            query = query.where(AuditLog.action.startswith(flt.action, autoescape=True))
        else:
            query = query.where(AuditLog.action == flt.action)
    if flt.target_type:
        query = query.where(AuditLog.target_type == flt.target_type)
    if flt.target_id:
        query = query.where(AuditLog.target_id == flt.target_id)
    if flt.outcome:
        query = query.where(AuditLog.outcome == flt.outcome)
    if flt.since is not None:
        query = query.where(AuditLog.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(AuditLog.created_at < flt.until)
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(tuple_(AuditLog.created_at, AuditLog.id) < tuple_(created, row_id))
    query = query.order_by(AuditLog.created_at.desc(), AuditLog.id.desc()).limit(limit + 1)
    rows = list(session.scalars(query))
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def actor_names(session: Session, actors: Iterable[str]) -> dict[str, str]:
    """Readable names for "user:<id>" (the e-mail) and "token:<id>" (the token's name).

    Two IN queries per page at most; unknown ids keep their raw form.
    """
    user_ids, token_ids = set(), set()
    for actor in actors:
        kind, _, ident = actor.partition(":")
        if kind == "user":
            user_ids.add(ident)
        elif kind == "token":
            token_ids.add(ident)
    names: dict[str, str] = {}
    if user_ids:
        for user_id, email in session.execute(select(User.id, User.email).where(User.id.in_(user_ids))):
            names[f"user:{user_id}"] = str(email)
    if token_ids:
        rows = session.execute(select(ApiToken.id, ApiToken.name, ApiToken.prefix).where(ApiToken.id.in_(token_ids)))
        for token_id, name, prefix in rows:
            names[f"token:{token_id}"] = f"token {name or prefix + '…'}"
    return names
