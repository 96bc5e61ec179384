"""Jobs section of API.md: dispatch, get, list, retry, cancel, queue stats."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import current_app, g, jsonify, request
from sqlalchemy.exc import IntegrityError

from app.errors import NotFound, ValidationError
from app.jobs.dispatch import get_publisher, get_registry
from app.models.base import new_id
from app.redis_client import get_redis
from app.services import jobs as jobs_service
from app.services.queue_stats import queue_stats
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.idempotent import Answer, answer_once
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
    body = json_body()
    tenant = _tenant() or _settings().default_tenant
    spec = parse_dispatch(body, tenant_id=tenant)

    def perform(ids: dict[str, Any], resumed: bool) -> Answer:
        job_id = ids["job_id"]
        if resumed:
            earlier = _find_job(job_id)
            if earlier is not None:
                return earlier
        try:
            done = jobs_service.submit(
                sql(),
                replace(spec, job_id=job_id),
                registry=get_registry(),
                publisher=get_publisher(),
                settings=_settings(),
            )
        except IntegrityError:
            # The request that held the key is still alive after all and created the job.
            earlier = _find_job(job_id) if resumed else None
            if earlier is None:
                raise
            return earlier
        row = done.row
        if not done.created:
            # A unique job's twin is pending or running (J8): its id, nothing queued.
            return Answer(200, _dispatched(row.id, row.status, row.job_class, row.queue))
        # Literal "pending": a fast worker may already have moved the row on. Built from
        # values in memory: reading the row back could fail a dispatch that happened.
        return Answer(201, _dispatched(row.id, "pending", row.job_class, row.queue))

    return answer_once("POST /api/jobs/dispatch", tenant, body, {"job_id": new_id()}, perform)


def _dispatched(job_id: str, status: str, job_class: str, queue: str) -> dict[str, Any]:
    return {"id": job_id, "status": status, "job_class": job_class, "queue": queue}


def _find_job(job_id: str) -> Answer | None:
    """The answer for a job an earlier request with the same Idempotency-Key created."""
    sql().rollback()  # after a failed insert, the session is usable only once rolled back
    try:
        row = jobs_service.get_job(sql(), job_id, _tenant())
    except NotFound:
        return None
    return Answer(201, _dispatched(row.id, row.status, row.job_class, row.queue))


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
