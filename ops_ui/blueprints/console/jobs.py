"""Jobs: the filtered, keyset-paginated list, and one job's detail."""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from app.services import jobs as jobs_service
from ops_ui.auth import console_role
from ops_ui.blueprints.console import bp
from ops_ui.blueprints.console.common import tenant
from ops_ui.extensions import sql
from ops_ui.presenters import is_encrypted


@bp.get("/jobs")
@console_role("viewer")
def jobs() -> Any:
    flt = jobs_service.JobFilter(tenant_id=tenant(), status=request.args.get("status") or None)
    rows, next_cursor = jobs_service.list_jobs(sql(), flt, limit=50, cursor=request.args.get("cursor"))
    return render_template("console/jobs.html", jobs=rows, next_cursor=next_cursor, status=flt.status)


@bp.get("/jobs/<job_id>")
@console_role("viewer")
def job_detail(job_id: str) -> Any:
    row = jobs_service.get_job(sql(), job_id, tenant())
    return render_template("console/job.html", job=row, encrypted=is_encrypted(row))
