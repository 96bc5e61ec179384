"""Jobs section of API.md: dispatch, get, list, retry, cancel, queue stats."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import g, jsonify
from sqlalchemy.exc import IntegrityError

from app.backends.current import backends
from app.composition import submit as submission
from app.errors import NotFound
from app.kernel import cancel as cancelling
from app.kernel import lookup, scheduled
from app.kernel.ports import Canceller
from app.models.base import new_id
from app.monitoring.queue_stats import queue_stats
from app.redis_client import get_redis
from app.services import jobs as jobs_service
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.idempotent import Answer, answer_once
from ops_ui.blueprints.api.models.jobs import (
    Cancelled,
    DispatchBody,
    Dispatched,
    Job,
    JobList,
    JobListQuery,
    QueueStats,
    RanNow,
    Retried,
)
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.schemas import dispatch_spec, json_body
from ops_ui.blueprints.api.validation import read_query, validated
from ops_ui.extensions import sql
from ops_ui.presenters import job_to_dict
from ops_ui.settings import app_settings
from ops_ui.trail import record_action


def _settings() -> Any:
    return app_settings()


def _tenant() -> str | None:
    tenant: str | None = g.principal.tenant_id
    return tenant


def _canceller() -> Canceller:
    return backends().canceller


@bp.post("/jobs/dispatch")
@api_auth("operator")
@operation(
    "Dispatch a job",
    body=DispatchBody,
    answers={201: (Dispatched, "queued"), 200: (Dispatched, "a unique job's live twin: nothing queued")},
    errors=(409,),
    idempotent=True,
)
def dispatch() -> Any:
    body = json_body()
    tenant = _tenant() or _settings().default_tenant
    spec = dispatch_spec(validated(DispatchBody, body), tenant_id=tenant)

    def perform(ids: dict[str, Any], resumed: bool) -> Answer:
        job_id = ids["job_id"]
        if resumed:
            earlier = _find_job(job_id)
            if earlier is not None:
                return earlier
        try:
            done = submission.submit(
                sql(),
                replace(spec, job_id=job_id),
                registry=backends().registry,
                publisher=backends().publisher,
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
        row = lookup.get_job(sql(), job_id, _tenant())
    except NotFound:
        return None
    return Answer(201, _dispatched(row.id, row.status, row.job_class, row.queue))


@bp.get("/jobs/<job_id>")
@api_auth("viewer")
@operation("A job: status, attempts, timings, result or error", answers={200: (Job, "the job")})
def get_job(job_id: str) -> Any:
    return jsonify(job_to_dict(lookup.get_job(sql(), job_id, _tenant())))


@bp.get("/jobs")
@api_auth("viewer")
@operation("List jobs, newest first (keyset pagination)", query=JobListQuery, answers={200: (JobList, "a page")})
def list_jobs() -> Any:
    query = read_query(JobListQuery)
    flt = jobs_service.JobFilter(tenant_id=_tenant(), status=query.status, queue=query.queue, job_class=query.job_class)
    rows, next_cursor = jobs_service.list_jobs(sql(), flt, limit=query.limit, cursor=query.cursor)
    return jsonify(items=[job_to_dict(r) for r in rows], next_cursor=next_cursor)


@bp.post("/jobs/<job_id>/retry")
@api_auth("operator")
@operation("Retry a failed or cancelled job", answers={202: (Retried, "retry queued")}, errors=(409,))
def retry(job_id: str) -> Any:
    row = submission.retry_job(
        sql(),
        job_id,
        _tenant(),
        registry=backends().registry,
        publisher=backends().publisher,
        settings=_settings(),
    )
    record_action("job.retry", "job", job_id, after={"retry_id": row.id})
    return jsonify(id=row.id, status="pending", retry_of=job_id), 202


@bp.post("/jobs/<job_id>/cancel")
@api_auth("operator")
@operation(
    "Cancel a pending, retrying or running job (a running one is terminated)",
    answers={200: (Cancelled, "cancelled")},
    errors=(409,),
)
def cancel(job_id: str) -> Any:
    before = lookup.get_job(sql(), job_id, _tenant()).status
    row = cancelling.cancel_job(sql(), job_id, _tenant(), canceller=_canceller())
    record_action("job.cancel", "job", job_id, before={"status": before}, after={"status": row.status})
    return jsonify(id=row.id, status=row.status)


@bp.post("/jobs/<job_id>/run-now")
@api_auth("operator")
@operation(
    "Release a job waiting in the scheduled set (a long delay or retry backoff) now",
    answers={202: (RanNow, "due now: queued within about a second")},
    errors=(409,),
)
def run_now(job_id: str) -> Any:
    row = scheduled.run_now(sql(), job_id, _tenant(), get_redis(_settings().redis_url))
    record_action("job.run_now", "job", job_id, after={"due_at": row.due_at.isoformat() if row.due_at else None})
    return jsonify(id=row.id, status=row.status, due_at=row.due_at.isoformat() if row.due_at else None), 202


@bp.get("/jobs/queue/<name>/stats")
@api_auth("viewer")
@operation("A queue's figures (completed and failed: the last hour)", answers={200: (QueueStats, "the queue")})
def stats(name: str) -> Any:
    result = queue_stats(sql(), name, _tenant(), get_redis(_settings().redis_url))
    return jsonify(result.as_dict())
