"""Audit log page (U1): admins only, tenant-scoped, readable actors, filters, keyset pages."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from app.db import db
from app.models import AuditLog
from app.services import audit
from app.services.auth import create_token


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _row(tenant: str | None, action: str = "job.retry", **fields: Any) -> AuditLog:
    fields.setdefault("actor", "cli")
    entry = audit.record(db.session, tenant_id=tenant, action=action, **fields)
    db.session.commit()
    return entry


def test_audit_log_is_for_admins_only(client: Any, console: Any) -> None:
    response = client.get("/audit")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    for role in ("viewer", "operator"):
        session = console(role=role, tenant=_tenant())
        assert session.get("/audit").status_code == 403
        assert "/audit" not in session.get("/").get_data(as_text=True)  # not in the navigation either
    assert console(role="admin", tenant=_tenant()).get("/audit").status_code == 200


def test_rows_show_readable_actor_target_link_change_and_stay_in_their_tenant(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    token = create_token(db.session, tenant, "operator", name="deploy bot")
    db.session.commit()
    job_id = str(uuid.uuid4())
    _row(
        tenant,
        "job.cancel",
        actor=f"token:{token.token.id}",
        target_type="job",
        target_id=job_id,
        before={"status": "pending"},
        after={"status": "cancelled"},
        ip="10.1.2.3",
        reason="customer asked",
    )
    _row(tenant, "user.role", actor=f"user:{admin.user_id}", target_type="user", target_id="u1")
    _row(_tenant(), "job.retry", actor="cli", target_type="job", target_id="foreign-job-id")
    html = admin.get("/audit").get_data(as_text=True)
    assert "token deploy bot" in html and admin.email in html
    assert f'href="/jobs/{job_id}"' in html
    assert "{&#34;status&#34;: &#34;pending&#34;}" in html and "cancelled" in html
    assert "10.1.2.3" in html and "customer asked" in html
    assert "foreign-job-id" not in html


def test_superadmin_sees_every_tenant_and_untenanted_rows(console: Any) -> None:
    marker = uuid.uuid4().hex
    _row(_tenant(), "job.retry", target_type="queue", target_id=f"a-{marker}")
    _row(None, "user.login", actor=f"login:{marker}@example.com", outcome="denied")
    html = console(role="admin", tenant=None, superadmin=True).get("/audit").get_data(as_text=True)
    assert f"a-{marker}" in html and f"login:{marker}@example.com" in html and "denied" in html


def test_filters_narrow_the_rows(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    _row(tenant, "job.retry", target_type="job", target_id="j-retried")
    _row(tenant, "job.cancel", target_type="job", target_id="j-cancelled", outcome="denied")
    _row(tenant, "queue.pause", target_type="queue", target_id="q-paused", actor=f"user:{admin.user_id}")
    old = _row(tenant, "job.retry", target_type="job", target_id="j-old")
    old.created_at = datetime.now(UTC) - timedelta(days=3)
    db.session.commit()

    def ids(query: str) -> set[str]:
        html = admin.get(f"/audit?{query}").get_data(as_text=True)
        return set(re.findall(r"[jq]-[a-z]+", html)) & {"j-retried", "j-cancelled", "q-paused", "j-old"}

    assert ids("") == {"j-retried", "j-cancelled", "q-paused", "j-old"}
    assert ids("action=job.") == {"j-retried", "j-cancelled", "j-old"}
    assert ids("action=job.retry") == {"j-retried", "j-old"}
    assert ids("outcome=denied") == {"j-cancelled"}
    assert ids(f"actor={admin.email}") == {"q-paused"}
    assert ids("target_type=queue") == {"q-paused"}
    assert ids("target_id=j-cancelled") == {"j-cancelled"}
    assert ids("range=24h") == {"j-retried", "j-cancelled", "q-paused"}
    day = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%d")
    assert ids(f"from={day}&until={day}") == {"j-old"}
    empty = admin.get("/audit?action=nothing.here").get_data(as_text=True)
    assert "Nothing matches these filters" in empty
    assert admin.get("/audit?from=yesterday").status_code == 422
    assert admin.get("/audit?range=forever").status_code == 422
    assert admin.get("/audit?cursor=garbage!").status_code == 422


def test_keyset_pages_walk_every_row_once_and_keep_filters(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    for n in range(57):
        _row(tenant, "job.retry", target_type="queue", target_id=f"page-{n:02d}")
    _row(tenant, "user.create", target_type="queue", target_id="page-other")
    seen: list[str] = []
    path: str | None = "/audit?action=job.retry"
    while path:
        html = admin.get(path).get_data(as_text=True)
        seen += re.findall(r"page-\d\d", html)
        found = re.search(r'href="(/audit\?[^"]*cursor=[^"]+)"', html)
        path = found.group(1).replace("&amp;", "&") if found else None
        assert path is None or "action=job.retry" in path
    assert sorted(seen) == [f"page-{n:02d}" for n in range(57)]
    assert seen[0] == "page-56"  # newest first
