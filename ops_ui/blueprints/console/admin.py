"""API tokens (create, revoke; the raw token shown once) and console users (admins only).

A tenant admin manages their tenant's tokens and users; a superadmin every tenant's. Nobody
hands out a role above their own, demotes or deactivates themselves, and only a superadmin
creates superadmins or metrics tokens (they read every tenant's /metrics). Every change is
audited.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length

from app.errors import ValidationError
from app.models import ApiToken, Tenant, User
from app.models.api_token import API_TOKEN, METRICS_TOKEN
from app.services import auth as accounts
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import tenant
from ops_ui.extensions import sql
from ops_ui.trail import record_action_for


def _me() -> User:
    user: User = current_user.user
    return user


def _grantable_roles() -> list[str]:
    me = _me()
    return list(accounts.ROLES) if me.is_superadmin else accounts.roles_up_to(me.role)


def _tenant_ids() -> list[str]:
    return list(sql().scalars(select(Tenant.id).order_by(Tenant.id)))


class TokenForm(FlaskForm):  # type: ignore[misc]
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    role = SelectField("Role")
    tenant = StringField("Tenant", validators=[Length(max=64)])
    metrics = BooleanField("Metrics token (reads /metrics for every tenant, nothing else)")


class UserForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired()])
    role = SelectField("Role")
    tenant = StringField("Tenant", validators=[Length(max=64)])
    superadmin = BooleanField("Superadmin (sees and manages every tenant)")


def _chosen_tenant(field: Any) -> str | None:
    """The form's tenant for a superadmin (required), the admin's own otherwise."""
    if _me().is_superadmin:
        value = (field.data or "").strip()
        return value or None
    return tenant()


# --- API tokens ---


def _token_page(form: TokenForm, status: int = 200) -> Any:
    tokens = accounts.list_tokens(sql(), tenant())
    creators = {t.created_by for t in tokens if t.created_by}
    emails: dict[str, str] = {}
    if creators:
        emails = {uid: email for uid, email in sql().execute(select(User.id, User.email).where(User.id.in_(creators)))}
    page = render_template(
        "console/tokens.html",
        form=form,
        tokens=tokens,
        creators=emails,
        superadmin=_me().is_superadmin,
        tenant_ids=_tenant_ids(),
    )
    return page, status


def _token_form() -> TokenForm:
    form = TokenForm()
    form.role.choices = [(r, r) for r in _grantable_roles()]
    return form


@bp.get("/tokens")
@console_role("admin")
def tokens() -> Any:
    return _token_page(_token_form())


@bp.post("/tokens")
@console_role("admin")
def create_token() -> Any:
    form = _token_form()
    if not form.validate_on_submit():
        return _token_page(form, 422)
    target_tenant = _chosen_tenant(form.tenant)
    if target_tenant is None:
        form.tenant.errors = ["Pick the tenant the token acts for."]
        return _token_page(form, 422)
    if form.metrics.data and not _me().is_superadmin:
        form.metrics.errors = ["Only a superadmin creates metrics tokens: they read every tenant's figures."]
        return _token_page(form, 422)
    kind = METRICS_TOKEN if form.metrics.data else API_TOKEN
    try:
        new = accounts.create_token(
            sql(), target_tenant, form.role.data, name=form.name.data.strip(), created_by=_me().id, kind=kind
        )
    except ValidationError as exc:
        sql().rollback()
        (form.role if "role" in str(exc) else form.tenant).errors = [str(exc)]
        return _token_page(form, 422)
    after = {
        "name": new.token.name,
        "role": new.token.role,
        "kind": new.token.kind,
        "tenant": new.token.tenant_id,
        "prefix": new.token.prefix,
    }
    record_action_for(new.token.tenant_id, "token.create", "token", new.token.id, after=after)
    # The raw token goes straight into this response: never into the session, a flash or a log.
    response = render_template("console/tokens_created.html", token=new.token, raw=new.raw)
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/tokens/<token_id>/revoke")
@console_role("admin")
def revoke_token(token_id: str) -> Any:
    token: ApiToken = accounts.get_token(sql(), token_id, tenant())
    try:
        accounts.revoke_token(sql(), token)
    except ValidationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.tokens"))
    before, after = {"revoked": False}, {"revoked": True}
    record_action_for(token.tenant_id, "token.revoke", "token", token.id, before=before, after=after)
    flash(f"Token {token.name or token.prefix} is revoked: requests with it now get 401.", "success")
    return redirect(url_for("console.tokens"))


# --- Users ---


def _user_form() -> UserForm:
    form = UserForm()
    form.role.choices = [(r, r) for r in _grantable_roles()]
    return form


def _users_page(form: UserForm, status: int = 200) -> Any:
    page = render_template(
        "console/users.html",
        form=form,
        users=accounts.list_users(sql(), tenant()),
        me=_me(),
        roles=_grantable_roles(),
        superadmin=_me().is_superadmin,
        tenant_ids=_tenant_ids(),
    )
    return page, status


def _field_for(message: str, form: UserForm) -> Any:
    """The form field a service's validation message is about."""
    lowered = message.lower()
    if "password" in lowered:
        return form.password
    if "e-mail" in lowered:
        return form.email
    if "tenant" in lowered:
        return form.tenant
    if "superadmin" in lowered:
        return form.superadmin
    return form.role


@bp.get("/users")
@console_role("admin")
def users() -> Any:
    return _users_page(_user_form())


@bp.post("/users")
@console_role("admin")
def create_user() -> Any:
    form = _user_form()
    if not form.validate_on_submit():
        return _users_page(form, 422)
    make_superadmin = bool(form.superadmin.data)
    target_tenant = None if make_superadmin and _me().is_superadmin else _chosen_tenant(form.tenant)
    try:
        accounts.check_new_user(_me(), form.role.data, target_tenant, make_superadmin)
        user = accounts.create_user(
            sql(), form.email.data, form.password.data, form.role.data, target_tenant, superadmin=make_superadmin
        )
    except ValidationError as exc:
        sql().rollback()
        _field_for(str(exc), form).errors = [str(exc)]
        return _users_page(form, 422)
    after = {"email": user.email, "role": user.role, "tenant": user.tenant_id, "superadmin": user.is_superadmin}
    record_action_for(user.tenant_id, "user.create", "user", user.id, after=after)
    flash(f"User {user.email} created. Give them the password through a private channel.", "success")
    return redirect(url_for("console.users"))


@bp.post("/users/<user_id>/role")
@console_role("admin")
def change_user_role(user_id: str) -> Any:
    target = accounts.get_user(sql(), user_id, tenant())
    before = target.role
    role = request.form.get("role", "")
    try:
        accounts.change_role(sql(), _me(), target, role)
    except ValidationError as exc:
        sql().rollback()
        flash(f"{target.email}: {exc}", "error")
        return redirect(url_for("console.users"))
    record_action_for(target.tenant_id, "user.role", "user", target.id, before={"role": before}, after={"role": role})
    flash(f"{target.email} is now {role}.", "success")
    return redirect(url_for("console.users"))


def _set_active(user_id: str, active: bool) -> Any:
    target = accounts.get_user(sql(), user_id, tenant())
    try:
        accounts.set_active(sql(), _me(), target, active)
    except ValidationError as exc:
        sql().rollback()
        flash(str(exc), "error")
        return redirect(url_for("console.users"))
    action = "user.reactivate" if active else "user.deactivate"
    record_action_for(
        target.tenant_id, action, "user", target.id, before={"active": not active}, after={"active": active}
    )
    if active:
        flash(f"{target.email} can log in again.", "success")
    else:
        flash(f"{target.email} is deactivated: they cannot log in, and their open sessions have ended.", "success")
    return redirect(url_for("console.users"))


@bp.post("/users/<user_id>/deactivate")
@console_role("admin")
def deactivate_user(user_id: str) -> Any:
    return _set_active(user_id, False)


@bp.post("/users/<user_id>/reactivate")
@console_role("admin")
def reactivate_user(user_id: str) -> Any:
    return _set_active(user_id, True)
