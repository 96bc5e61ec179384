"""Console sign-in and sign-out, with per-address throttling of failed logins (U1)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app import redis_keys
from app.models.base import utcnow
from app.services import audit
from app.services.auth import verify_user
from ops_ui.auth import LoginUser, console_role
from ops_ui.blueprints.console import bp
from ops_ui.blueprints.console.common import redis
from ops_ui.extensions import sql

#: Failed logins per client address before logins are refused for LOGIN_LOCK_S.
MAX_LOGIN_FAILURES = 10
LOGIN_LOCK_S = 15 * 60


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired()])


def _failures_key() -> str:
    return redis_keys.login_failures(request.remote_addr or "unknown")


def _safe_next(target: str | None) -> str:
    """Only a path on this site. Browsers read "//host" and a backslash after the first slash as
    another site, and drop tabs and newlines before that, so none of those may appear."""
    if target and target.startswith("/") and not target.startswith("//"):
        if "\\" not in target and not any(ord(c) < 32 or ord(c) == 127 for c in target):
            return target
    return url_for("console.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        failures = int(redis().get(_failures_key()) or 0)
        if failures >= MAX_LOGIN_FAILURES:
            form.password.errors = ["Too many failed attempts. Try again in 15 minutes."]
            return render_template("console/login.html", form=form), 429
        user = verify_user(sql(), form.email.data, form.password.data)
        if user is None:
            pipe = redis().pipeline()
            pipe.incr(_failures_key())
            pipe.expire(_failures_key(), LOGIN_LOCK_S)
            pipe.execute()
            audit.record(
                sql(),
                actor=f"login:{form.email.data}",
                action="user.login",
                tenant_id=None,
                ip=request.remote_addr,
                outcome="denied",
            )
            sql().commit()
            form.password.errors = ["E-mail or password is wrong."]
            return render_template("console/login.html", form=form), 401
        redis().delete(_failures_key())
        login_user(LoginUser(user))
        user.last_login_at = utcnow()
        audit.record(
            sql(),
            actor=f"user:{user.id}",
            action="user.login",
            tenant_id=user.tenant_id,
            ip=request.remote_addr,
        )
        sql().commit()
        return redirect(_safe_next(request.args.get("next")))
    return render_template("console/login.html", form=form)


@bp.post("/logout")
@console_role("viewer")
def logout() -> Any:
    logout_user()
    flash("You are logged out.")
    return redirect(url_for("console.login"))
