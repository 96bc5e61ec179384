"""The audit trail of API actions: one place that says who did what, to what, from where."""

from __future__ import annotations

from typing import Any

from flask import g, request

from app.services import audit
from ops_ui.extensions import sql


def record_action(action: str, target_type: str, target_id: str, **fields: Any) -> None:
    """Audit `action` by the request's token (actor, tenant, IP) and commit it at once.

    `fields` are audit.record's optional ones (before, after, reason, outcome).
    """
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
