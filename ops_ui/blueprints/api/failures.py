"""Failures section of API.md: failure reports, fingerprint groups, dead-letter actions (F2, F4)."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request
from werkzeug.exceptions import BadRequest

from app.errors import ValidationError
from app.jobs.dispatch import get_publisher, get_registry
from app.services import dead_letter
from app.services import failures as failures_service
from app.services import jobs as jobs_service
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.schemas import json_body
from ops_ui.extensions import sql
from ops_ui.presenters import failure_report_to_dict
from ops_ui.trail import record_action


def _tenant() -> str | None:
    tenant: str | None = g.principal.tenant_id
    return tenant


def _queue_body(allowed: set[str]) -> dict[str, Any]:
    """The body of a queue action: `queue` a non-empty string; other keys refused (400)."""
    body = json_body()
    unknown = set(body) - allowed
    if unknown:
        raise BadRequest(f"unknown fields: {', '.join(sorted(unknown))}")
    if not isinstance(body.get("queue"), str) or not body["queue"]:
        raise BadRequest("queue must be a non-empty string")
    return body


@bp.get("/jobs/<job_id>/failure-report")
@api_auth("viewer")
def failure_report(job_id: str) -> Any:
    report = failures_service.failure_report(sql(), job_id, _tenant())
    return jsonify(failure_report_to_dict(report, jobs_service.get_job(sql(), job_id, _tenant())))


@bp.get("/monitoring/failures")
@api_auth("viewer")
def failure_groups() -> Any:
    raw_limit = request.args.get("limit", str(failures_service.DEFAULT_GROUP_PAGE))
    try:
        limit = int(raw_limit)
    except ValueError as exc:
        raise ValidationError(f"limit must be an integer, got {raw_limit!r}") from exc
    since = request.args.get("since")
    groups, next_cursor = failures_service.list_failure_groups(
        sql(),
        _tenant(),
        job_class=request.args.get("job_class") or None,
        since=failures_service.parse_instant(since, "since") if since else None,
        limit=limit,
        cursor=request.args.get("cursor") or None,
    )
    return jsonify(items=[failures_service.group_to_dict(x) for x in groups], next_cursor=next_cursor)


@bp.post("/admin/queue/retry")
@api_auth("operator")
def retry_queue() -> Any:
    queue = _queue_body({"queue"})["queue"]
    outcome = dead_letter.retry_queue(
        sql(),
        _tenant(),
        queue,
        registry=get_registry(),
        publisher=get_publisher(),
        settings=current_app.extensions["celeriac_settings"],
    )
    record_action("queue.retry_failed", "queue", queue, after={"retried": outcome.retried, "skipped": outcome.skipped})
    return jsonify(retried=outcome.retried, skipped=outcome.skipped)


@bp.post("/admin/queue/clear")
@api_auth("admin")
def clear_queue() -> Any:
    body = _queue_body({"queue", "older_than"})
    raw = body.get("older_than")
    older_than = failures_service.parse_instant(raw, "older_than") if raw is not None else None
    cleared = dead_letter.clear_queue(sql(), _tenant(), body["queue"], older_than)
    record_action(
        "queue.clear_failed",
        "queue",
        body["queue"],
        before={"older_than": older_than and older_than.isoformat()},
        after={"cleared": cleared},
    )
    return jsonify(cleared=cleared)
