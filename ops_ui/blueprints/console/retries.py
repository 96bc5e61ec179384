"""Retries: jobs waiting for their next attempt, with "retry now" and cancel (Sidekiq's Retries tab).

Everyone reads (their own tenant's jobs; a superadmin every tenant's); operators act, each
action a CSRF-checked POST that writes an audit row.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from app.backends.current import backends
from app.errors import AppError, Conflict
from app.kernel import cancel as cancelling
from app.kernel import lookup
from app.services import retry_queue
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import dispatching, tenant
from ops_ui.extensions import sql
from ops_ui.presenters import shown_job
from ops_ui.trail import record_action


@bp.get("/retries")
@console_role("viewer")
def retries() -> Any:
    waiting = retry_queue.waiting_retries(sql(), tenant())
    rows = [(shown_job(row), retry_queue.next_attempt_at(row)) for row in waiting.rows]
    return render_template(
        "console/retries.html", rows=rows, total=waiting.total, all_tenants=tenant() is None
    )


@bp.post("/retries/<job_id>/run-now")
@console_role("operator")
def retry_now(job_id: str) -> Any:
    lookup.get_job(sql(), job_id, tenant())  # 404 before anything else
    try:
        row = retry_queue.retry_now(sql(), job_id, tenant(), canceller=backends().canceller, **dispatching())
    except AppError as exc:
        sql().rollback()
        record_action("job.retry_now", "job", job_id, after={"error": str(exc)}, outcome="refused")
        flash(f"Not retried: {exc}", "error")
        return redirect(url_for("console.retries"))
    record_action("job.retry_now", "job", job_id, before={"status": "retrying"}, after={"retry_id": row.id})
    flash(f"Job {job_id[:8]} runs again now as job {row.id[:8]}.", "success")
    return redirect(url_for("console.retries"))


@bp.post("/retries/<job_id>/cancel")
@console_role("operator")
def retry_cancel(job_id: str) -> Any:
    before = lookup.get_job(sql(), job_id, tenant()).status
    try:
        row = cancelling.cancel_job(sql(), job_id, tenant(), canceller=backends().canceller)
    except Conflict as exc:
        flash(f"Not cancelled: {exc}", "error")
        return redirect(url_for("console.retries"))
    record_action("job.cancel", "job", job_id, before={"status": before}, after={"status": row.status})
    flash(f"Job {job_id[:8]} cancelled: it will not be retried.", "success")
    return redirect(url_for("console.retries"))
