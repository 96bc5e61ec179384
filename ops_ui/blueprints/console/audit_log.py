"""The audit log: who did what, to which target, from where, with what outcome.

Admins only (like Oban Web Pro's audit view): rows carry colleagues' IP addresses, failed
login e-mails and before/after values of edited payloads, which a read-only viewer (a wall
screen, a support login) has no need for. A tenant admin reads their tenant's rows; a
superadmin every row, including actions without a tenant (logins, superadmin actions).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import request
from sqlalchemy import select

from app.errors import ValidationError
from app.models import User
from app.services import audit_query
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import render_page, tenant
from ops_ui.extensions import sql

#: Time range presets of the filter form: value -> (label, length).
RANGES: dict[str, tuple[str, timedelta | None]] = {
    "": ("any time", None),
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(days=1)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}
#: Longest before / after JSON shown in a table cell; the rest is cut with an ellipsis.
MAX_JSON_CHARS = 240
PAGE = 50


def compact_json(value: Any) -> str:
    """A before / after value as short one-line JSON."""
    if value is None:
        return ""
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True, default=str, ensure_ascii=False)
    return text if len(text) <= MAX_JSON_CHARS else text[: MAX_JSON_CHARS - 1] + "…"


def _date(name: str, end_of_day: bool = False) -> datetime | None:
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValidationError(f"{name} must be a date like 2026-11-23, got {raw!r}") from exc
    return day + timedelta(days=1) if end_of_day else day


def _actor(raw: str) -> str | None:
    """The stored actor for what the operator typed: an e-mail, user:<id>, token:<id>, cli."""
    raw = raw.strip()
    if not raw:
        return None
    if "@" in raw and not raw.startswith("login:"):
        user_id = sql().scalar(select(User.id).where(User.email == raw.lower()))
        return f"user:{user_id}" if user_id else f"login:{raw.lower()}"
    return raw


def _filter() -> audit_query.AuditFilter:
    preset = request.args.get("range", "")
    if preset not in RANGES:
        raise ValidationError(f"range must be one of {', '.join(k for k in RANGES if k)}")
    length = RANGES[preset][1]
    since = datetime.now(UTC) - length if length else _date("from")
    return audit_query.AuditFilter(
        tenant_id=tenant(),
        actor=_actor(request.args.get("actor", "")),
        action=(request.args.get("action") or "").strip() or None,
        target_type=(request.args.get("target_type") or "").strip() or None,
        target_id=(request.args.get("target_id") or "").strip() or None,
        outcome=(request.args.get("outcome") or "").strip() or None,
        since=since,
        until=None if length else _date("until", end_of_day=True),
    )


@bp.get("/audit")
@console_role("admin")
def audit_log() -> Any:
    flt = _filter()
    rows, next_cursor = audit_query.list_entries(sql(), flt, limit=PAGE, cursor=request.args.get("cursor") or None)
    names = audit_query.actor_names(sql(), {row.actor for row in rows})
    kept = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_page(
        "console/audit.html",
        "console/audit_rows.html",
        rows=rows,
        names=names,
        next_cursor=next_cursor,
        args=request.args,
        kept=kept,
        ranges=RANGES,
        outcomes=audit_query.OUTCOMES,
        compact_json=compact_json,
        all_tenants=tenant() is None,
        filtered=any(v for k, v in request.args.items() if k != "cursor"),
    )
