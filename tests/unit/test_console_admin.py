"""API tokens and users pages (U1): admins only, tenant-scoped, roles capped, raw token shown once, audited."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from app.db import db
from app.errors import ValidationError
from app.models import ApiToken, AuditLog, User
from app.services.auth import change_role, check_new_user, create_token, create_user, roles_up_to


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def _audit(action: str, target_id: str) -> AuditLog | None:
    db.session.expire_all()
    return db.session.scalar(select(AuditLog).where(AuditLog.action == action, AuditLog.target_id == target_id))


def _other_user(tenant: str, role: str = "viewer") -> User:
    user = create_user(db.session, f"u-{uuid.uuid4().hex[:8]}@example.com", "long enough pw", role, tenant)
    db.session.commit()
    return user


# --- access ---


def test_admin_pages_need_login_and_the_admin_role(client: Any, console: Any) -> None:
    for path in ("/tokens", "/users"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    operator = console(role="operator", tenant=_tenant())
    for path in ("/tokens", "/users"):
        assert operator.get(path).status_code == 403
        assert operator.post(path, data={"name": "x", "role": "viewer"}).status_code == 403
    admin = console(role="admin", tenant=_tenant())
    assert admin.get("/tokens").status_code == 200 and admin.get("/users").status_code == 200


def test_actions_without_csrf_are_refused_and_change_nothing(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    before = db.session.query(ApiToken).filter_by(tenant_id=tenant).count()
    assert admin.post("/tokens", data={"name": "ci", "role": "viewer"}, csrf=False).status_code == 400
    victim = _other_user(tenant)
    assert admin.post(f"/users/{victim.id}/deactivate", csrf=False).status_code == 400
    db.session.expire_all()
    assert db.session.query(ApiToken).filter_by(tenant_id=tenant).count() == before
    assert db.session.get(User, victim.id).is_active


# --- tokens ---


def _session_of(session: Any, app: Any) -> dict[str, Any]:
    cookie = session.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    data: dict[str, Any] = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    return data


def test_created_token_is_shown_once_works_and_is_audited(console: Any, client: Any, app: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    answer = admin.post("/tokens", data={"name": "deploy pipeline", "role": "operator", "tenant": "elsewhere"})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    raw = re.search(r'class="secret"[^>]*>(cel_[^<]+)<', html)
    assert raw, html
    token = raw.group(1)
    stored = db.session.scalar(select(ApiToken).where(ApiToken.name == "deploy pipeline", ApiToken.tenant_id == tenant))
    assert stored is not None and stored.role == "operator" and stored.created_by == admin.user_id
    # A tenant admin's token is for their own tenant, whatever the form said.
    assert (
        db.session.scalar(select(ApiToken).where(ApiToken.tenant_id == "elsewhere", ApiToken.name == "deploy pipeline"))
        is None
    )
    listing = admin.get("/tokens").get_data(as_text=True)
    assert "deploy pipeline" in listing and stored.prefix in listing and token not in listing
    assert admin.email in listing  # created by
    assert token not in str(_session_of(admin, app))  # not in a flash message or anywhere in the cookie
    entry = _audit("token.create", stored.id)
    assert entry is not None and entry.actor == f"user:{admin.user_id}" and token not in str(entry.after)
    # The token works, and its use is noted (at most once a minute).
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, stored.id).last_used_at is not None
    assert "never" not in admin.get("/tokens").get_data(as_text=True).split("deploy pipeline")[1].split("</tr>")[0]


def test_bad_token_input_is_a_form_error_and_creates_nothing(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    missing = admin.post("/tokens", data={"name": "", "role": "viewer"})
    assert missing.status_code == 422 and "This field is required" in missing.get_data(as_text=True)
    bad_role = admin.post("/tokens", data={"name": "x", "role": "root"})
    assert bad_role.status_code == 422 and "Not a valid choice" in bad_role.get_data(as_text=True)
    assert db.session.query(ApiToken).filter_by(tenant_id=tenant).count() == 0


def test_superadmin_picks_the_tenant(console: Any) -> None:
    root = console(role="admin", tenant=None, superadmin=True)
    tenant = _tenant()
    assert root.post("/tokens", data={"name": "scraper", "role": "viewer", "tenant": ""}).status_code == 422
    bad = root.post("/tokens", data={"name": "scraper", "role": "viewer", "tenant": "Not A Slug"})
    assert bad.status_code == 422 and "tenant must be" in bad.get_data(as_text=True)
    assert root.post("/tokens", data={"name": "scraper", "role": "viewer", "tenant": tenant}).status_code == 200
    assert db.session.query(ApiToken).filter_by(tenant_id=tenant, name="scraper").count() == 1


def test_revoke_token_is_confirmed_audited_and_other_tenants_tokens_are_404(console: Any, client: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    mine = create_token(db.session, tenant, "viewer", name="old")
    theirs = create_token(db.session, _tenant(), "viewer", name="theirs")
    db.session.commit()
    listing = admin.get("/tokens").get_data(as_text=True)
    assert f"/tokens/{mine.token.id}/revoke" in listing and "data-confirm" in listing
    assert "theirs" not in listing
    assert admin.post(f"/tokens/{theirs.token.id}/revoke").status_code == 404
    answer = admin.post(f"/tokens/{mine.token.id}/revoke", data={"reason": "leaked in a log"})
    assert answer.status_code == 302
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {mine.raw}"}).status_code == 401
    entry = _audit("token.revoke", mine.token.id)
    assert entry is not None and entry.reason == "leaked in a log" and entry.after == {"revoked": True}
    again = admin.post(f"/tokens/{mine.token.id}/revoke", follow_redirects=True)
    assert "already revoked" in again.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ApiToken, theirs.token.id).revoked_at is None


# --- users ---


def test_admin_creates_a_user_of_their_tenant_who_can_log_in(console: Any, app: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    answer = admin.post(
        "/users", data={"email": email, "password": "a good password", "role": "operator", "tenant": "x"}
    )
    assert answer.status_code == 302
    user = db.session.scalar(select(User).where(User.email == email))
    assert user is not None and user.tenant_id == tenant and user.role == "operator" and not user.is_superadmin
    assert _audit("user.create", user.id) is not None
    assert email in admin.get("/users").get_data(as_text=True)


def test_user_form_errors_are_shown_and_nothing_is_created(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    short = admin.post("/users", data={"email": "a@example.com", "password": "short", "role": "viewer"})
    assert short.status_code == 422 and "at least 8 characters" in short.get_data(as_text=True)
    dup = admin.post("/users", data={"email": admin.email, "password": "long enough pw", "role": "viewer"})
    assert dup.status_code == 422 and "already exists" in dup.get_data(as_text=True)
    forged = admin.post(
        "/users", data={"email": "b@example.com", "password": "long enough pw", "role": "viewer", "superadmin": "y"}
    )
    assert forged.status_code == 422 and "only a superadmin" in forged.get_data(as_text=True)
    assert db.session.scalar(select(User).where(User.email.in_(["a@example.com", "b@example.com"]))) is None


def test_only_a_superadmin_creates_superadmins_and_users_of_any_tenant(console: Any) -> None:
    root = console(role="admin", tenant=None, superadmin=True)
    tenant = _tenant()
    email, root_email = f"x-{uuid.uuid4().hex[:8]}@example.com", f"r-{uuid.uuid4().hex[:8]}@example.com"
    assert (
        root.post(
            "/users", data={"email": email, "password": "long enough pw", "role": "viewer", "tenant": tenant}
        ).status_code
        == 302
    )
    assert (
        root.post(
            "/users", data={"email": root_email, "password": "long enough pw", "role": "admin", "superadmin": "y"}
        ).status_code
        == 302
    )
    made = db.session.scalar(select(User).where(User.email == email))
    boss = db.session.scalar(select(User).where(User.email == root_email))
    assert made is not None and made.tenant_id == tenant
    assert boss is not None and boss.is_superadmin and boss.tenant_id is None
    listing = root.get("/users").get_data(as_text=True)
    assert email in listing and root_email in listing and "all tenants" in listing
    # A tenant admin does not even see the superadmin.
    assert root_email not in console(role="admin", tenant=tenant).get("/users").get_data(as_text=True)


def test_change_role_is_audited_but_not_of_oneself_nor_of_another_tenant(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    colleague = _other_user(tenant, "viewer")
    stranger = _other_user(_tenant(), "viewer")
    assert admin.post(f"/users/{colleague.id}/role", data={"role": "operator"}).status_code == 302
    entry = _audit("user.role", colleague.id)
    assert entry is not None and entry.before == {"role": "viewer"} and entry.after == {"role": "operator"}
    assert admin.post(f"/users/{stranger.id}/role", data={"role": "admin"}).status_code == 404
    own = admin.post(f"/users/{admin.user_id}/role", data={"role": "viewer"}, follow_redirects=True)
    assert "cannot change your own role" in own.get_data(as_text=True)
    bad = admin.post(f"/users/{colleague.id}/role", data={"role": "god"}, follow_redirects=True)
    assert "role must be one of" in bad.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, admin.user_id).role == "admin"
    assert db.session.get(User, colleague.id).role == "operator"
    assert db.session.get(User, stranger.id).role == "viewer"


def test_deactivated_user_is_logged_out_and_cannot_log_in_until_reactivated(console: Any) -> None:
    tenant = _tenant()
    admin = console(role="admin", tenant=tenant)
    victim = console(role="viewer", tenant=tenant)
    assert victim.get("/").status_code == 200
    assert admin.post(f"/users/{victim.user_id}/deactivate", data={"reason": "left the team"}).status_code == 302
    ended = victim.get("/")
    assert ended.status_code == 302 and "/login" in ended.headers["Location"]
    entry = _audit("user.deactivate", victim.user_id)
    assert entry is not None and entry.reason == "left the team"
    relogin = victim.client.post(
        "/login", data={"email": victim.email, "password": "correct horse battery", "csrf_token": victim.csrf()}
    )
    assert relogin.status_code == 401
    assert admin.post(f"/users/{victim.user_id}/reactivate").status_code == 302
    assert _audit("user.reactivate", victim.user_id) is not None
    db.session.expire_all()
    assert db.session.get(User, victim.user_id).is_active


def test_admin_cannot_deactivate_themselves(console: Any) -> None:
    admin = console(role="admin", tenant=_tenant())
    answer = admin.post(f"/users/{admin.user_id}/deactivate", follow_redirects=True)
    assert "cannot deactivate yourself" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, admin.user_id).is_active
    assert admin.get("/users").status_code == 200


def test_superadmin_changes_are_filed_under_the_tenant_they_touch(console: Any) -> None:
    tenant = _tenant()
    root = console(role="admin", tenant=None, superadmin=True)
    assert root.post("/tokens", data={"name": "from-root", "role": "viewer", "tenant": tenant}).status_code == 200
    token = db.session.scalar(select(ApiToken).where(ApiToken.tenant_id == tenant, ApiToken.name == "from-root"))
    assert token is not None
    entry = _audit("token.create", token.id)
    assert entry is not None and entry.tenant_id == tenant and entry.actor == f"user:{root.user_id}"
    listing = console(role="admin", tenant=tenant).get("/audit?action=token.create").get_data(as_text=True)
    assert root.email in listing  # the tenant's admins see what a superadmin did to their tenant


def test_role_rules_hold_in_the_service_whatever_the_form_offers() -> None:
    operator = User(id="op", email="op@example.com", role="operator", tenant_id="acme", is_superadmin=False)
    root = User(id="root", email="root@example.com", role="admin", tenant_id=None, is_superadmin=True)
    assert roles_up_to("operator") == ["viewer", "operator"] and roles_up_to("admin") == ["viewer", "operator", "admin"]
    with pytest.raises(ValidationError, match="at most your own role"):
        check_new_user(operator, "admin", "acme", superadmin=False)
    with pytest.raises(ValidationError, match="own tenant"):
        check_new_user(operator, "viewer", "globex", superadmin=False)
    with pytest.raises(ValidationError, match="only a superadmin"):
        check_new_user(operator, "viewer", "acme", superadmin=True)
    check_new_user(root, "admin", None, superadmin=True)
    colleague = User(id="c", email="c@example.com", role="viewer", tenant_id="acme", is_superadmin=False)
    with pytest.raises(ValidationError, match="at most your own role"):
        change_role(db.session, operator, colleague, "admin")
    assert colleague.role == "viewer"
