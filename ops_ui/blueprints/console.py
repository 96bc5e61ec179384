"""The operations console (first cut): login, logout, dashboard, job detail.

The full console (U2) builds on this; every page but the login needs a session.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from app import redis_keys
from app.redis_client import get_redis
from app.services import audit
from app.services import jobs as jobs_service
from app.services.auth import verify_user
from ops_ui.auth import LoginUser, console_role
from ops_ui.extensions import sql
from ops_ui.presenters import is_encrypted

bp = Blueprint("console", __name__)

#: Failed logins per client address before logins are refused for LOGIN_LOCK_S.
MAX_LOGIN_FAILURES = 10
LOGIN_LOCK_S = 15 * 60


class LoginForm(FlaskForm):  # type: ignore[misc]
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired()])


def _failures_key() -> str:
    return redis_keys.login_failures(request.remote_addr or "unknown")


def _redis() -> Any:
    return get_redis(current_app.extensions["celeriac_settings"].redis_url)


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("console.dashboard")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        failures = int(_redis().get(_failures_key()) or 0)
        if failures >= MAX_LOGIN_FAILURES:
            form.password.errors = ["Too many failed attempts. Try again in 15 minutes."]
            return render_template("console/login.html", form=form), 429
        user = verify_user(sql(), form.email.data, form.password.data)
        if user is None:
            pipe = _redis().pipeline()
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
        _redis().delete(_failures_key())
        login_user(LoginUser(user))
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


@bp.get("/")
@console_role("viewer")
def dashboard() -> Any:
    flt = jobs_service.JobFilter(tenant_id=g.principal.tenant_id, status=request.args.get("status") or None)
    rows, next_cursor = jobs_service.list_jobs(sql(), flt, limit=50, cursor=request.args.get("cursor"))
    return render_template("console/dashboard.html", jobs=rows, next_cursor=next_cursor, status=flt.status)


@bp.get("/jobs/<job_id>")
@console_role("viewer")
def job_detail(job_id: str) -> Any:
    row = jobs_service.get_job(sql(), job_id, g.principal.tenant_id)
    return render_template("console/job.html", job=row, encrypted=is_encrypted(row))
