"""The audit trail of the API, the console and the CLI: who did what, to what, from where.

Every audit row ops_ui writes goes through `record_entry` (app.services.audit.record, then
commit); the helpers below only say who the actor is and which tenant the row is filed under.
"""

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


def record_entry(actor: str, action: str, tenant_id: str | None, **fields: Any) -> None:
    """Write one audit row and commit it (with whatever else the session holds) at once.

    `fields` are audit.record's optional ones (target_type, target_id, before, after, ip,
    outcome, reason).
    """
    audit.record(sql(), actor=actor, action=action, tenant_id=tenant_id, **fields)
    sql().commit()


def record_action(action: str, target_type: str, target_id: str, **fields: Any) -> None:
    """Audit `action` by the request's principal, filed under the principal's tenant."""
    record_action_for(g.principal.tenant_id, action, target_type, target_id, **fields)


def record_action_for(tenant_id: str | None, action: str, target_type: str, target_id: str, **fields: Any) -> None:
    """Audit `action` by the request's principal (actor, IP), filed under `tenant_id`.

    Admin changes to a token or user are filed under the tenant of what changed: a superadmin
    has no tenant of their own, and there that tenant's admins see it in their audit log. The
    reason defaults to the one the request carried.
    """
    fields.setdefault("reason", request_reason())
    record_entry(
        g.principal.actor,
        action,
        tenant_id,
        target_type=target_type,
        target_id=target_id,
        ip=request.remote_addr,
        **fields,
    )


def record_cli_action(
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    *,
    tenant_id: str | None = None,
    **fields: Any,
) -> None:
    """Audit `action` by the command line (actor "cli", no address)."""
    record_entry("cli", action, tenant_id, target_type=target_type, target_id=target_id, **fields)
