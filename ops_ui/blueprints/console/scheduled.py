"""Scheduled: delayed jobs (a broker ETA) and long-delayed ones (Celeriac's scheduled set),
with "run now" and cancel (Sidekiq's Scheduled tab).

Everyone reads their own tenant's jobs (a superadmin every tenant's); operators act, each
action a CSRF-checked POST that writes an audit row. "Run now" applies to jobs held in the
scheduled set; a short delay's message is already in a worker's hands until it is due.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from app.backends.current import backends
from app.errors import AppError
from app.kernel import cancel as cancelling
from app.kernel import lookup
from app.kernel import scheduled as held
from app.redis_client import get_redis
from app.services.scheduled_jobs import delayed_jobs
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import tenant
from ops_ui.extensions import sql
from ops_ui.presenters import shown_job
from ops_ui.settings import app_settings
from ops_ui.trail import record_action


@bp.get("/scheduled")
@console_role("viewer")
def scheduled() -> Any:
    found = delayed_jobs(sql(), tenant())
    rows = [(shown_job(row), row.due_at or row.eta) for row in found.rows]
    return render_template(
        "console/scheduled.html",
        rows=rows,
        total=found.total,
        all_tenants=tenant() is None,
        threshold=app_settings().scheduled_after_s,
    )


@bp.post("/scheduled/<job_id>/run-now")
@console_role("operator")
def scheduled_run_now(job_id: str) -> Any:
    before = lookup.get_job(sql(), job_id, tenant())  # 404 before anything else
    due = before.due_at.isoformat() if before.due_at else None
    try:
        held.run_now(sql(), job_id, tenant(), get_redis(app_settings().redis_url))
    except AppError as exc:
        sql().rollback()
        record_action("job.run_now", "job", job_id, after={"error": str(exc)}, outcome="refused")
        flash(f"Not released: {exc}", "error")
        return redirect(url_for("console.scheduled"))
    record_action("job.run_now", "job", job_id, before={"due_at": due}, after={"due_at": "now"})
    flash(f"Job {job_id[:8]} is due now: it is queued within a second.", "success")
    return redirect(url_for("console.scheduled"))


@bp.post("/scheduled/<job_id>/cancel")
@console_role("operator")
def scheduled_cancel(job_id: str) -> Any:
    before = lookup.get_job(sql(), job_id, tenant()).status
    try:
        row = cancelling.cancel_job(sql(), job_id, tenant(), canceller=backends().canceller)
    except AppError as exc:
        sql().rollback()
        flash(f"Not cancelled: {exc}", "error")
        return redirect(url_for("console.scheduled"))
    record_action("job.cancel", "job", job_id, before={"status": before}, after={"status": row.status})
    flash(f"Job {job_id[:8]} cancelled: it will not run.", "success")
    return redirect(url_for("console.scheduled"))
