"""`POST /api/jobs/bulk`: preview, or start the job that retries, cancels or purges by filter."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify

from app.backends.current import backends
from app.errors import Forbidden
from app.services import bulk_jobs
from app.services.auth import role_allows
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.bulk import BulkBody, BulkPreview, BulkQuery, BulkStarted
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_body, read_query
from ops_ui.extensions import sql
from ops_ui.settings import app_settings
from ops_ui.trail import record_action


def job_backends() -> bulk_jobs.Backends:
    current = backends()
    return bulk_jobs.Backends(current.registry, current.publisher, current.canceller, app_settings())


@bp.post("/jobs/bulk")
@api_auth("operator")
@operation(
    "Retry, cancel or purge (admin) every job of the tenant matching a filter, as a tracked job "
    "with progress; ?preview=1 only counts",
    body=BulkBody,
    query=BulkQuery,
    answers={202: (BulkStarted, "the bulk job started"), 200: (BulkPreview, "preview: nothing done")},
)
def bulk() -> Any:
    query = read_query(BulkQuery)
    body = read_body(BulkBody)
    raw_filter = body.filter.model_dump(exclude_none=True) if body.filter is not None else {}
    request = bulk_jobs.bulk_request(body.action, raw_filter, g.principal.tenant_id)
    needed = bulk_jobs.ROLES[body.action]
    if not role_allows(g.principal.role, needed):
        raise Forbidden(f"{body.action} needs the {needed} role; the token has {g.principal.role}")
    if query.preview in ("1", "true"):
        found = bulk_jobs.preview(sql(), request)
        return jsonify(count=found.count, sample=found.sample)
    job_id = bulk_jobs.dispatch_bulk(
        sql(), request, actor=g.principal.actor, reason=body.reason, backends=job_backends()
    )
    record_action(
        "job.bulk_requested",
        "bulk_job",
        job_id,
        before={"filter": request.filter_dict(), "action": body.action},
    )
    return jsonify(id=job_id), 202
