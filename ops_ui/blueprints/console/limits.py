"""Concurrency limits on the Queues page: live usage (an htmx fragment) and the admin edit form.

The same service and audit as `PUT /api/limits/concurrency/{key}` (app.ratelimit.limits_view).
Keys belong to a tenant: users see and edit their tenant's; a superadmin sees every
tenant's and names the tenant when editing.
"""

from __future__ import annotations

from typing import Any

import redis as redis_lib
from flask import flash, redirect, render_template, request, url_for

from app.errors import AppError
from app.ratelimit import limits_view
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import redis, tenant
from ops_ui.settings import app_settings
from ops_ui.trail import record_action_for


@bp.get("/queues/limits")
@console_role("viewer")
def queue_limits() -> Any:
    """The live part of the panel (polled by queue_limits.html)."""
    return render_template(
        "console/queue_limits_rows.html",
        limits=limits_view.concurrency_limits(redis(), tenant()),
        all_tenants=tenant() is None,
    )


def _int(raw: str | None) -> Any:
    text = (raw or "").strip()
    return int(text) if text.isdigit() and len(text) <= 9 else text


@bp.post("/queues/limits")
@console_role("admin")
def queue_limits_set() -> Any:
    key = (request.form.get("key") or "").strip()
    owner = tenant() or (request.form.get("tenant") or "").strip() or str(app_settings().default_tenant)
    limit = _int(request.form.get("limit"))
    try:
        before = limits_view.concurrency_limit(redis(), owner, key)
        after = limits_view.set_concurrency_limit(redis(), app_settings(), owner, key, limit)
    except AppError as exc:  # a bad key or limit: nothing changed
        flash(str(exc), "error")
        return redirect(url_for("console.queues") + "#queue-limits")
    except redis_lib.RedisError:
        flash("Redis is unavailable; the limit was not changed. Try again.", "error")
        return redirect(url_for("console.queues") + "#queue-limits")
    change = {"before": {"limit": before["limit"]}, "after": {"limit": limit}}
    record_action_for(owner, "concurrency.limit.set", "concurrency_key", key, **change)
    usage = f"{after['running']} running, {after['waiting']} waiting"
    flash(f"Concurrency limit of {key} set to {limit}: {usage}.", "success")
    return redirect(url_for("console.queues") + "#queue-limits")
