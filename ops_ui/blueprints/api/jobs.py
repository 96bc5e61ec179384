"""Jobs section of API.md: dispatch, get, list, retry, cancel, queue stats."""

from __future__ import annotations

from typing import Any

from flask import current_app, g, jsonify, request

from app.errors import ValidationError
from app.jobs.dispatch import get_publisher, get_registry
from app.redis_client import get_redis
from app.services import jobs as jobs_service
from app.services.queue_stats import queue_stats
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.schemas import json_body, parse_dispatch
from ops_ui.extensions import sql
from ops_ui.presenters import job_to_dict
from ops_ui.trail import record_action


def _settings() -> Any:
    return current_app.extensions["celeriac_settings"]


def _tenant() -> str | None:
    tenant: str | None = g.principal.tenant_id
    return tenant


def _canceller() -> jobs_service.CeleryCanceller:
    from app.celery_app import celery_app

    return jobs_service.CeleryCanceller(get_redis(_settings().redis_url), celery_app.control)


@bp.post("/jobs/dispatch")
@api_auth("operator")
def dispatch() -> Any:
    spec = parse_dispatch(json_body(), tenant_id=_tenant() or _settings().default_tenant)
    done = jobs_service.submit(sql(), spec, registry=get_registry(), publisher=get_publisher(), settings=_settings())
    row = done.row
    if not done.created:
        # A unique job's twin is pending or running (J8): its id, nothing queued.
        return jsonify(id=row.id, status=row.status, job_class=row.job_class, queue=row.queue), 200
    # Literal "pending": a fast worker may already have moved the row on.
    return jsonify(id=row.id, status="pending", job_class=row.job_class, queue=row.queue), 201


@bp.get("/jobs/<job_id>")
@api_auth("viewer")
def get_job(job_id: str) -> Any:
    return jsonify(job_to_dict(jobs_service.get_job(sql(), job_id, _tenant())))


def _limit() -> int:
    raw = request.args.get("limit", str(jobs_service.DEFAULT_PAGE))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValidationError(f"limit must be an integer, got {raw!r}") from exc


@bp.get("/jobs")
@api_auth("viewer")
def list_jobs() -> Any:
    flt = jobs_service.JobFilter(
        tenant_id=_tenant(),
        status=request.args.get("status") or None,
        queue=request.args.get("queue") or None,
        job_class=request.args.get("job_class") or None,
    )
    rows, next_cursor = jobs_service.list_jobs(sql(), flt, limit=_limit(), cursor=request.args.get("cursor") or None)
    return jsonify(items=[job_to_dict(r) for r in rows], next_cursor=next_cursor)


@bp.post("/jobs/<job_id>/retry")
@api_auth("operator")
def retry(job_id: str) -> Any:
    row = jobs_service.retry_job(
        sql(),
        job_id,
        _tenant(),
        registry=get_registry(),
        publisher=get_publisher(),
        settings=_settings(),
    )
    record_action("job.retry", "job", job_id, after={"retry_id": row.id})
    return jsonify(id=row.id, status="pending", retry_of=job_id), 202


@bp.post("/jobs/<job_id>/cancel")
@api_auth("operator")
def cancel(job_id: str) -> Any:
    before = jobs_service.get_job(sql(), job_id, _tenant()).status
    row = jobs_service.cancel_job(sql(), job_id, _tenant(), canceller=_canceller())
    record_action("job.cancel", "job", job_id, before={"status": before}, after={"status": row.status})
    return jsonify(id=row.id, status=row.status)


@bp.get("/jobs/queue/<name>/stats")
@api_auth("viewer")
def stats(name: str) -> Any:
    result = queue_stats(sql(), name, _tenant(), get_redis(_settings().redis_url))
    return jsonify(result.as_dict())
