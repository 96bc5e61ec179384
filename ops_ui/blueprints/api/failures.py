"""Failures section of API.md: failure reports, fingerprint groups, dead-letter actions (F2, F4)."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify

from app.backends.current import backends
from app.failures import dead_letter
from app.failures import groups as failures_service
from app.kernel import lookup
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.models.failures import (
    Cleared,
    ClearFailedBody,
    FailureGroups,
    FailureGroupsQuery,
    FailureReport,
    RetriedFailed,
    RetryFailedBody,
)
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.validation import read_body, read_query
from ops_ui.extensions import sql
from ops_ui.presenters import failure_report_to_dict
from ops_ui.trail import record_action


def _tenant() -> str | None:
    tenant: str | None = g.principal.tenant_id
    return tenant


@bp.get("/jobs/<job_id>/failure-report")
@api_auth("viewer")
@operation(
    "Exception, traceback, attempts timeline, fingerprint, similar failures count and group",
    answers={200: (FailureReport, "the report")},
    errors=(409,),
)
def failure_report(job_id: str) -> Any:
    report = failures_service.failure_report(sql(), job_id, _tenant())
    return jsonify(failure_report_to_dict(report, lookup.get_job(sql(), job_id, _tenant())))


@bp.get("/monitoring/failures")
@api_auth("viewer")
@operation(
    "Failure groups by root cause, newest first: count, first and last seen, job classes, sample ids",
    query=FailureGroupsQuery,
    answers={200: (FailureGroups, "a page")},
)
def failure_groups() -> Any:
    query = read_query(FailureGroupsQuery)
    groups, next_cursor = failures_service.list_failure_groups(
        sql(),
        _tenant(),
        job_class=query.job_class,
        since=failures_service.parse_instant(query.since, "since") if query.since else None,
        limit=query.limit,
        cursor=query.cursor,
    )
    return jsonify(items=[failures_service.group_to_dict(x) for x in groups], next_cursor=next_cursor)


@bp.post("/admin/queue/retry")
@api_auth("operator")
@operation(
    "Retry every failed job of the queue not retried yet (audited); 404: the tenant never used the queue",
    body=RetryFailedBody,
    answers={200: (RetriedFailed, "retried and skipped")},
    errors=(404,),
)
def retry_queue() -> Any:
    queue = read_body(RetryFailedBody).queue
    outcome = dead_letter.retry_queue(
        sql(),
        _tenant(),
        queue,
        registry=backends().registry,
        publisher=backends().publisher,
        settings=current_app.extensions["celeriac_settings"],
    )
    record_action("queue.retry_failed", "queue", queue, after={"retried": outcome.retried, "skipped": outcome.skipped})
    return jsonify(retried=outcome.retried, skipped=outcome.skipped)


@bp.post("/admin/queue/clear")
@api_auth("admin")
@operation(
    "Delete the queue's failed jobs, or those failed before older_than (audited); 404: the tenant never used the queue",
    body=ClearFailedBody,
    answers={200: (Cleared, "how many")},
    errors=(404,),
)
def clear_queue() -> Any:
    body = read_body(ClearFailedBody)
    raw = body.older_than
    older_than = failures_service.parse_instant(raw, "older_than") if raw is not None else None
    cleared = dead_letter.clear_queue(sql(), _tenant(), body.queue, older_than)
    record_action(
        "queue.clear_failed",
        "queue",
        body.queue,
        before={"older_than": older_than and older_than.isoformat()},
        after={"cleared": cleared},
    )
    return jsonify(cleared=cleared)
