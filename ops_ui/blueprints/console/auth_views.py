"""Console sign-in and sign-out (U1): failed logins throttled per account and per address,
and signing out ends the user's sessions in every browser."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app.models import User
from app.models.base import utcnow
from app.services import login_throttle
from app.services.auth import end_sessions, verify_user
from app.services.login_throttle import Lockout, LoginThrottle
from ops_ui.auth import LoginUser, console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis
from ops_ui.extensions import sql
from ops_ui.trail import record_entry

#: What a locked-out caller is told, by what is locked.
LOCKOUT_MESSAGES = {
    "account": "Too many failed attempts for this account.",
    "address": "Too many failed attempts from your network address.",
}


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired()])


def _throttle() -> LoginThrottle:
    # Read at call time, so a test may lower the limits with monkeypatch.
    return LoginThrottle(redis(), login_throttle.DEFAULT_LIMITS)


def _safe_next(target: str | None) -> str:
    """Only a path on this site. Browsers read "//host" and a backslash after the first slash as
    another site, and drop tabs and newlines before that, so none of those may appear."""
    if target and target.startswith("/") and not target.startswith("//"):
        if "\\" not in target and not any(ord(c) < 32 or ord(c) == 127 for c in target):
            return target
    return url_for("console.dashboard")


def _login_page(form: LoginForm, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    page = render_template("console/login.html", form=form, limits=login_throttle.DEFAULT_LIMITS)
    return page, status, headers or {}


def _lockout_message(lockout: Lockout) -> str:
    minutes = lockout.retry_after_min
    return f"{LOCKOUT_MESSAGES[lockout.scope]} Try again in {minutes} minute{'s' if minutes != 1 else ''}."


def _audit_denied(email: str, reason: str | None = None) -> None:
    record_entry(f"login:{email}", "user.login", None, ip=request.remote_addr, outcome="denied", reason=reason)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if not form.validate_on_submit():
        return _login_page(form)
    email, address, throttle = form.email.data, request.remote_addr, _throttle()
    lockout = throttle.lockout(email, address)
    if lockout is not None:
        # Refused before the password is checked: a locked account cannot be guessed at, and an
        # unknown e-mail is answered exactly like a known one.
        _audit_denied(email, f"{lockout.scope} locked: too many failed attempts")
        form.password.errors = [_lockout_message(lockout)]
        return _login_page(form, 429, {"Retry-After": str(lockout.retry_after_s)})
    user = verify_user(sql(), email, form.password.data)
    if user is None:
        started = throttle.record_failure(email, address)
        _audit_denied(email, f"wrong e-mail or password; {started.scope} now locked" if started else None)
        form.password.errors = ["E-mail or password is wrong."]
        return _login_page(form, 401)
    throttle.record_success(email, address)
    login_user(LoginUser(user))
    user.last_login_at = utcnow()
    record_entry(f"user:{user.id}", "user.login", user.tenant_id, ip=request.remote_addr)  # commits last_login_at too
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
@console_role("viewer")
def logout() -> Any:
    user: User = current_user.user
    end_sessions(sql(), user)
    record_entry(f"user:{user.id}", "user.logout", user.tenant_id, ip=request.remote_addr)
    logout_user()
    flash("You are logged out, here and in every other browser where you were logged in.")
    return redirect(url_for("console.login"))
