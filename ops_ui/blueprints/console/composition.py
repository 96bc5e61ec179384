"""Batches (progress, counts, callbacks) and chains (steps): lists, details, cancel.

Pages of running groups refresh themselves through htmx while anything moves; each
refresh costs two queries (the groups, one grouped count). Cancelling needs the
operator role and is audited; another tenant's group is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from app.backends.current import backends
from app.composition import batch_pages
from app.composition import batches as batches_service
from app.composition.runtime import get_hub
from app.errors import Conflict
from app.models import JobExecution
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import render_page, tenant
from ops_ui.extensions import sql
from ops_ui.presenters import shown_job
from ops_ui.settings import app_settings
from ops_ui.trail import record_action

#: Seconds between refreshes of a page that shows a running batch or chain.
LIVE_REFRESH_S = 3
CALLBACKS = (
    ("then", "then_job", "runs when every job completed (or failures stayed within the allowance)"),
    ("catch", "catch_job", "runs on the first failure past the allowance"),
    ("finally", "finally_job", "runs once the batch is over, whatever the outcome"),
)


@bp.get("/batches")
@console_role("viewer")
def batches() -> Any:
    page = batch_pages.list_batches(sql(), tenant(), cursor=request.args.get("cursor") or None)
    return render_page(
        "console/batches.html",
        "console/batches_live.html",
        page=page,
        live=any(item["live"] for item in page.items),
        refresh_s=LIVE_REFRESH_S,
    )


@bp.get("/batches/<batch_id>")
@console_role("viewer")
def batch_detail(batch_id: str) -> Any:
    row = batch_pages.get_group(sql(), batch_id, tenant(), "batch")
    counts = batch_pages.status_counts(sql(), JobExecution.batch_id, [row.id]).get(row.id, {})
    summary = batch_pages.batch_summary(row, counts)
    jobs, next_cursor = batch_pages.group_jobs(sql(), JobExecution.batch_id, row.id, request.args.get("cursor"))
    links: dict[str, dict[str, str]] = {name: (getattr(row, column) or {}) for name, column, _ in CALLBACKS}
    callback_rows = batch_pages.jobs_by_id(sql(), [link.get("id", "") for link in links.values()])
    callbacks = [
        {"name": name, "help": help_text, "link": links[name], "row": callback_rows.get(links[name].get("id", ""))}
        for name, _, help_text in CALLBACKS
    ]
    return render_page(
        "console/batch.html",
        "console/batch_live.html",
        batch=summary,
        tenant_id=row.tenant_id,
        callbacks=callbacks,
        jobs=[shown_job(job) for job in jobs],
        next_cursor=next_cursor,
        refresh_s=LIVE_REFRESH_S,
    )


@bp.post("/batches/<batch_id>/cancel")
@console_role("operator")
def batch_cancel(batch_id: str) -> Any:
    try:
        _batch, cancelled = batches_service.cancel_batch(
            sql(), batch_id, tenant(), canceller=backends().canceller, hub=get_hub(app_settings())
        )
    except Conflict as exc:
        sql().rollback()
        flash(f"Not cancelled: {exc}.", "error")
        return redirect(url_for("console.batch_detail", batch_id=batch_id))
    record_action("batch.cancel", "batch", batch_id, after={"cancelled_jobs": cancelled})
    flash(
        f"Batch cancelled: {cancelled} waiting or running jobs cancelled; its finally callback still runs.", "success"
    )
    return redirect(url_for("console.batch_detail", batch_id=batch_id))


@bp.get("/chains")
@console_role("viewer")
def chains() -> Any:
    page = batch_pages.list_chains(sql(), tenant(), cursor=request.args.get("cursor") or None)
    return render_page(
        "console/chains.html",
        "console/chains_live.html",
        page=page,
        live=any(item["live"] for item in page.items),
        refresh_s=LIVE_REFRESH_S,
    )


@bp.get("/chains/<chain_id>")
@console_role("viewer")
def chain_detail(chain_id: str) -> Any:
    row = batch_pages.get_group(sql(), chain_id, tenant(), "chain")
    counts = batch_pages.status_counts(sql(), JobExecution.chain_id, [row.id]).get(row.id, {})
    summary = batch_pages.chain_summary(row, counts)
    catch = row.catch_job or {}
    catch_row = batch_pages.jobs_by_id(sql(), [catch.get("id", "")]).get(catch.get("id", ""))
    return render_page(
        "console/chain.html",
        "console/chain_live.html",
        chain=summary,
        steps=[shown_job(step) for step in batch_pages.chain_steps(sql(), row.id)],
        catch=catch,
        catch_row=catch_row,
        refresh_s=LIVE_REFRESH_S,
    )


@bp.post("/chains/<chain_id>/cancel")
@console_role("operator")
def chain_cancel(chain_id: str) -> Any:
    try:
        _view, cancelled = batches_service.cancel_chain(sql(), chain_id, tenant(), canceller=backends().canceller)
    except Conflict as exc:
        sql().rollback()
        flash(f"Not cancelled: {exc}.", "error")
        return redirect(url_for("console.chain_detail", chain_id=chain_id))
    record_action("chain.cancel", "chain", chain_id, after={"cancelled_jobs": cancelled})
    flash(f"Chain cancelled: {cancelled} running or waiting steps cancelled.", "success")
    return redirect(url_for("console.chain_detail", chain_id=chain_id))
