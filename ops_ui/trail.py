"""The audit trail of actions from the API and the console: who did what, to what, from where."""

from __future__ import annotations

from typing import Any

from flask import g, request

from app.services import audit
from ops_ui.extensions import sql

#: Longest operator-supplied reason kept in the audit log.
MAX_REASON_CHARS = 500


def request_reason() -> str | None:
    """The optional "reason" a console form or an API body gave for an action."""
    raw: Any = request.form.get("reason") if request.mimetype != "application/json" else None
    body = g.get("json_body")  # an API body, once json_body() has read the stream
    if raw is None and isinstance(body, dict):
        raw = body.get("reason")
    if not isinstance(raw, str) or not raw.strip():
        return None
    return raw.strip()[:MAX_REASON_CHARS]


def record_action(action: str, target_type: str, target_id: str, **fields: Any) -> None:
    """Audit `action` by the request's principal (actor, tenant, IP) and commit it at once.

    `fields` are audit.record's optional ones (before, after, reason, outcome); the reason
    defaults to the one the request carried.
    """
    fields.setdefault("reason", request_reason())
    audit.record(
        sql(),
        actor=g.principal.actor,
        action=action,
        tenant_id=g.principal.tenant_id,
        target_type=target_type,
        target_id=target_id,
        ip=request.remote_addr,
        **fields,
    )
    sql().commit()
