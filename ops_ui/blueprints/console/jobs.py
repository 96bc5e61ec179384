"""Jobs: the searchable, live list with bulk retry / cancel, and one job's detail and actions."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from flask import abort, flash, g, make_response, redirect, render_template, request, url_for
from sqlalchemy import select

from app.backends.current import backends
from app.composition import submit as submission
from app.errors import AppError, BackendUnavailable, Conflict, ValidationError
from app.kernel import cancel as cancelling
from app.kernel import lookup
from app.models import TERMINAL_STATUSES, ExecutionStatus, JobDefinition
from app.monitoring.metrics import DEFAULT_QUEUES
from app.services import bulk_actions, bulk_jobs, edited_retry, job_history, job_search
from app.services.deferred_revokes import DeferredRevokes
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import dispatching, render_page, tenant
from ops_ui.extensions import sql
from ops_ui.presenters import is_encrypted, reveal_errors, shown_attempts, shown_job
from ops_ui.settings import app_settings
from ops_ui.trail import record_action, request_reason

#: Rows per page of the list.
PAGE_SIZE = 50
STATUSES = [s.value for s in ExecutionStatus]


def canceller() -> DeferredRevokes:
    """The process's canceller, with revokes sent as one broadcast per chunk."""
    used = backends()
    return DeferredRevokes(used.canceller, lambda ids: used.workers.revoke(ids, terminate=True))


def _fixed_tenant() -> bool:
    return tenant() is not None


def _suggestions() -> dict[str, list[str]]:
    """Job classes and queues for the filter inputs' suggestion lists (definitions: a small table)."""
    rows = sql().execute(select(JobDefinition.job_class, JobDefinition.default_queue)).all()
    return {
        "classes": sorted({r[0] for r in rows}),
        "queues": sorted({r[1] for r in rows} | set(DEFAULT_QUEUES)),
    }


def list_url(args: dict[str, str]) -> str:
    query = urlencode(args)
    return url_for("console.jobs") + (f"?{query}" if query else "")


def _safe_back(raw: str | None) -> str:
    """A return address on this console's jobs list only (never an open redirect)."""
    if raw and raw.startswith("/jobs") and not raw.startswith("//"):
        return raw
    return url_for("console.jobs")


@bp.get("/jobs")
@console_role("viewer")
def jobs() -> Any:
    cursor = request.args.get("cursor") or None
    errors: dict[str, str] = {}
    query = job_search.JobQuery(tenant_id=tenant())
    page = job_search.Page([], None)
    try:
        query = job_search.parse_query(request.args, tenant(), hide_system=True)
        page = job_search.search(sql(), query, limit=PAGE_SIZE, cursor=cursor)
    except job_search.FilterErrors as exc:
        errors = exc.errors
    except ValidationError as exc:
        errors = {"cursor": str(exc)}
    args = job_search.query_args(query, _fixed_tenant()) if not errors else {}
    # Status counts only for an unfiltered list: with other filters they would mislead.
    counts = (
        None
        if errors or not replace(query, status=None).is_empty
        else job_search.status_counts(sql(), query.tenant_id, query.system)
    )
    context = {
        "counts": counts,
        "count_cap": job_search.COUNT_CAP,
        "tab_args": {k: v for k, v in args.items() if k != "status"},
        "is_encrypted": is_encrypted,
        "page": page,
        "query": query,
        "form": request.args,
        "errors": errors,
        "args": args,
        "cursor": cursor,
        "statuses": STATUSES,
        "fixed_tenant": _fixed_tenant(),
        "live": cursor is None and not errors,
        "scan_window": job_search.SCAN_WINDOW,
        "back": request.full_path.rstrip("?"),
        **_suggestions(),
    }
    body = render_page("console/jobs.html", "console/jobs_table.html", **context)
    return (body, 422) if errors else body


@bp.post("/jobs/bulk")
@console_role("operator")
def jobs_bulk_selected() -> Any:
    action = request.form.get("action", "")
    back = _safe_back(request.form.get("back"))
    ids = request.form.getlist("ids")
    try:
        bulk_actions.statuses_for(action)
        if action == "retry":
            outcome = bulk_actions.retry_selected(sql(), ids, tenant(), **dispatching())
        else:
            outcome = bulk_actions.cancel_selected(sql(), ids, tenant(), canceller=canceller())
    except ValidationError as exc:
        flash(f"Nothing done: {exc}", "error")
        return redirect(back)
    record_action(
        f"job.bulk_{action}",
        "jobs",
        f"selection of {len(set(ids))}",
        before={"ids": sorted(set(ids))[: bulk_actions.MAX_SELECTED]},
        after=outcome.as_dict(),
        outcome="ok" if outcome.error is None else "partial",
    )
    flash(outcome.message(), "success" if outcome.error is None else "error")
    return redirect(back)


def _matching_query() -> tuple[job_search.JobQuery, str]:
    """The filter of a "all matching" request (GET preview or POST confirmation), and the action.

    Raises:
        FilterErrors, ValidationError: bad filter values or action.
    """
    source = request.form if request.method == "POST" else request.args
    action = source.get("action", "")
    bulk_actions.statuses_for(action)
    return job_search.parse_query(source, tenant(), hide_system=True), action


@bp.get("/jobs/bulk/preview")
@console_role("operator")
def jobs_bulk_preview() -> Any:
    try:
        query, action = _matching_query()
    except job_search.FilterErrors as exc:
        flash("Fix the filter first: " + "; ".join(exc.errors.values()), "error")
        return redirect(url_for("console.jobs"))
    except ValidationError as exc:
        flash(str(exc), "error")
        return redirect(url_for("console.jobs"))
    args = job_search.query_args(query, _fixed_tenant())
    as_job = bulk_jobs.from_search(query, action)
    if as_job is not None:  # counted in full, run as a tracked bulk job
        found = bulk_jobs.preview(sql(), as_job)
        shown = bulk_actions.Preview(action, found.count, bulk_actions.statuses_for(action), True, tuple(found.sample))
    else:
        shown = bulk_actions.preview(sql(), query, action)
    return render_template(
        "console/jobs_bulk_preview.html",
        preview=shown,
        query=query,
        args=args,
        action=action,
        max_bulk=bulk_actions.MAX_BULK,
        list_url=list_url(args),
    )


@bp.post("/jobs/bulk/matching")
@console_role("operator")
def jobs_bulk_matching() -> Any:
    try:
        query, action = _matching_query()
    except job_search.FilterErrors as exc:
        flash("Nothing done; fix the filter first: " + "; ".join(exc.errors.values()), "error")
        return redirect(url_for("console.jobs"))
    except ValidationError as exc:
        flash(f"Nothing done: {exc}", "error")
        return redirect(url_for("console.jobs"))
    args = job_search.query_args(query, _fixed_tenant())
    as_job = bulk_jobs.from_search(query, action)
    if as_job is not None:
        return start_bulk_job(as_job)
    if action == "retry":
        outcome = bulk_actions.retry_matching(sql(), query, **dispatching())
    else:
        outcome = bulk_actions.cancel_matching(sql(), query, canceller=canceller())
    record_action(
        f"job.bulk_{action}",
        "job_filter",
        (urlencode(args) or "all jobs")[:200],
        before={"filter": args, "tenant": query.tenant_id},
        after=outcome.as_dict(),
        outcome="ok" if outcome.error is None else "partial",
    )
    flash(outcome.message(), "success" if outcome.error is None else "error")
    return redirect(list_url(args))


def start_bulk_job(bulk: bulk_jobs.BulkRequest) -> Any:
    """Start the tracked bulk job and show its page: live progress, and Cancel to stop it."""
    used = backends()
    job_id = bulk_jobs.dispatch_bulk(
        sql(),
        bulk,
        actor=g.principal.actor,
        reason=request_reason(),
        backends=bulk_jobs.Backends(used.registry, used.publisher, used.canceller, app_settings()),
    )
    record_action(
        "job.bulk_requested", "bulk_job", job_id, before={"filter": bulk.filter_dict(), "action": bulk.action}
    )
    flash(f"Bulk {bulk.action} started: this page follows its progress; Cancel stops it.", "success")
    return redirect(url_for("console.job_detail", job_id=job_id))


# --- one job ---------------------------------------------------------------------------


def _detail_context(job_id: str) -> dict[str, Any]:
    session = sql()
    row = lookup.get_job(session, job_id, tenant())
    runs = job_history.attempts(session, row.id)
    family = job_history.lineage(session, row)
    # An encrypted job's error texts read "[encrypted]" everywhere on the page (J9).
    job, shown_runs = shown_job(row), shown_attempts(row, runs)
    return {
        "job": job,
        "encrypted": is_encrypted(row),
        "has_error": row.error_message is not None or any(r.error_message is not None for r in runs),
        "runs": shown_runs,
        "lineage": family,
        "timeline": job_history.timeline(job, shown_runs, family.descendants),
        "dependencies": job_history.dependencies(session, row),
        "wait_ms": job_history.wait_ms(row),
        "finished_at": job_history.finished_at(row),
        "terminal": ExecutionStatus(row.status) in TERMINAL_STATUSES,
        "can_retry": row.status in job_search.RETRYABLE,
        "can_cancel": row.status in job_search.CANCELLABLE,
        "can_edit": edited_retry.editable(row),
    }


@bp.get("/jobs/<job_id>")
@console_role("viewer")
def job_detail(job_id: str) -> Any:
    context = _detail_context(job_id)
    context.setdefault("edit_text", None)
    context.setdefault("edit_error", None)
    return render_page("console/job.html", "console/job_status.html", **context)


@bp.post("/jobs/<job_id>/retry")
@console_role("operator")
def job_retry(job_id: str) -> Any:
    lookup.get_job(sql(), job_id, tenant())  # 404 before anything else
    try:
        row = submission.retry_job(sql(), job_id, tenant(), **dispatching())
    except (Conflict, ValidationError, BackendUnavailable) as exc:
        sql().rollback()
        record_action("job.retry", "job", job_id, after={"error": str(exc)}, outcome="refused")
        flash(f"Not retried: {exc}", "error")
        return redirect(url_for("console.job_detail", job_id=job_id))
    record_action("job.retry", "job", job_id, after={"retry_id": row.id})
    flash(f"Retried as job {row.id}.", "success")
    return redirect(url_for("console.job_detail", job_id=row.id))


@bp.post("/jobs/<job_id>/cancel")
@console_role("operator")
def job_cancel(job_id: str) -> Any:
    before = lookup.get_job(sql(), job_id, tenant()).status
    try:
        row = cancelling.cancel_job(sql(), job_id, tenant(), canceller=canceller().inner)
    except Conflict as exc:
        flash(f"Not cancelled: {exc}", "error")
        return redirect(url_for("console.job_detail", job_id=job_id))
    record_action("job.cancel", "job", job_id, before={"status": before}, after={"status": row.status})
    flash("Job cancelled.", "success")
    return redirect(url_for("console.job_detail", job_id=job_id))


@bp.post("/jobs/<job_id>/retry-edited")
@console_role("operator")
def job_retry_edited(job_id: str) -> Any:
    old = lookup.get_job(sql(), job_id, tenant())
    if is_encrypted(old):
        abort(409, description="an encrypted job can only be retried with its own payload")
    text = request.form.get("payload", "")
    try:
        payload = edited_retry.parse_payload(text)
        row = edited_retry.retry_with_payload(sql(), job_id, tenant(), payload, **dispatching())
    except AppError as exc:
        sql().rollback()
        context = _detail_context(job_id)
        return render_template("console/job.html", edit_text=text, edit_error=str(exc), **context), 422
    record_action("job.retry_edited", "job", job_id, after={"retry_id": row.id})
    flash(f"Retried with the edited payload as job {row.id}.", "success")
    return redirect(url_for("console.job_detail", job_id=row.id))


@bp.post("/jobs/<job_id>/reveal-error")
@console_role("admin")
def job_reveal_error(job_id: str) -> Any:
    """An encrypted job's error in clear, for this answer only: audited, never stored or cached.

    The decrypted text is neither logged nor put in the audit entry, the session or a flash.
    """
    row = lookup.get_job(sql(), job_id, tenant())
    if not is_encrypted(row):
        flash("This job is not encrypted: its error is shown as it is.", "error")
        return redirect(url_for("console.job_detail", job_id=job_id))
    reason = request_reason()
    if reason is None:
        context = _detail_context(job_id)
        context.update(edit_text=None, edit_error=None, reveal_error="Say why you need to see this error.")
        return render_template("console/job.html", **context), 422
    revealed = reveal_errors(row, job_history.attempts(sql(), row.id))
    unopened = sum(1 for r in revealed if r.problem is not None)
    record_action(
        "job.reveal_error",
        "job",
        job_id,
        after={"errors_shown": len(revealed) - unopened, "errors_not_decryptable": unopened},
        outcome="ok" if not unopened else "partial",
        reason=reason,
    )
    response = make_response(render_template("console/job_error_revealed.html", job=row, revealed=revealed))
    response.headers["Cache-Control"] = "no-store"
    return response
