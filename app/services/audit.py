"""Audit trail: every state-changing action, from the console, the API or the CLI.

`record` builds every audit row; the web process and the CLI call it through
`ops_ui.trail.record_entry`, which commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditLog


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    tenant_id: str | None,
    target_type: str | None = None,
    target_id: str | None = None,
    before: Any = None,
    after: Any = None,
    ip: str | None = None,
    outcome: str = "ok",
    reason: str | None = None,
) -> AuditLog:
    """Add an audit row to `session` (the caller's transaction commits it)."""
    entry = AuditLog(
        actor=actor,
        action=action,
        tenant_id=tenant_id,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        ip=ip,
        outcome=outcome,
        reason=reason,
    )
    session.add(entry)
    return entry
