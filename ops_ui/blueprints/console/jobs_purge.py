"""Jobs: "Purge all matching" (admins): delete finished jobs matching the list's filter for good.

Like retry / cancel all matching, it previews (count and the newest ids) and, once confirmed,
starts the tracked `celeriac.bulk` job (app.services.bulk_jobs) whose page shows its progress.
Only admins see it or may use it: a purge deletes executions and their attempts, no undo.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from app.errors import ValidationError
from app.services import bulk_jobs, job_search
from ops_ui.auth import console_role
from ops_ui.blueprints.console.blueprint import bp
from ops_ui.blueprints.console.common import tenant
from ops_ui.blueprints.console.jobs import list_url, start_bulk_job
from ops_ui.extensions import sql

#: Why a search cannot be purged by a bulk job (it takes the filters in bulk_jobs.FILTER_KEYS).
NOT_A_BULK_FILTER = (
    "a purge acts on one tenant's jobs by status, queue, job class, tag and creation time: "
    "pick a tenant and clear the job id, payload text and failure group filters first"
)


def _purge_request() -> tuple[bulk_jobs.BulkRequest, dict[str, str]]:
    """The bulk purge the form (GET preview or POST confirmation) asks for, and its filter values.

    Raises:
        FilterErrors: bad filter values.
        ValidationError: a filter a purge cannot take, or a status that is not finished.
    """
    source = request.form if request.method == "POST" else request.args
    query = job_search.parse_query(source, tenant(), hide_system=True)
    args = job_search.query_args(query, tenant() is not None)
    purge = bulk_jobs.from_search(query, "purge")
    if purge is None:
        raise ValidationError(NOT_A_BULK_FILTER)
    # The same checks as the API's (a status that is not finished, dates the wrong way round).
    bulk_jobs.bulk_request("purge", purge.filter_dict(), purge.tenant_id)
    return purge, args


def _refused(prefix: str, exc: Exception) -> Any:
    if isinstance(exc, job_search.FilterErrors):
        flash(f"{prefix}fix the filter first: " + "; ".join(exc.errors.values()), "error")
    else:
        flash(f"{prefix}{exc}", "error")
    return redirect(url_for("console.jobs"))


@bp.get("/jobs/bulk/purge/preview")
@console_role("admin")
def jobs_purge_preview() -> Any:
    try:
        purge, args = _purge_request()
    except (job_search.FilterErrors, ValidationError) as exc:
        return _refused("Nothing to purge: ", exc)
    found = bulk_jobs.preview(sql(), purge)
    return render_template(
        "console/jobs_purge_preview.html",
        found=found,
        purge=purge,
        args=args,
        statuses=bulk_jobs.PURGEABLE,
        list_url=list_url(args),
    )


@bp.post("/jobs/bulk/purge")
@console_role("admin")
def jobs_purge_matching() -> Any:
    try:
        purge, _ = _purge_request()
    except (job_search.FilterErrors, ValidationError) as exc:
        return _refused("Nothing purged: ", exc)
    return start_bulk_job(purge)
