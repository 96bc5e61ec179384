"""Batches and chains section of API.md (J5, J6), plus chain cancel (an extension)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import jsonify
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import BadRequest

from app.composition.runtime import get_hub
from app.errors import NotFound, ValidationError
from app.jobs.dispatch import get_publisher, get_registry
from app.models.base import new_id
from app.services import batches as batches_service
from app.services.dispatching import DispatchSpec
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.idempotent import Answer, answer_once
from ops_ui.blueprints.api.jobs import _canceller, _settings, _tenant
from ops_ui.blueprints.api.schemas import json_body, parse_dispatch
from ops_ui.extensions import sql
from ops_ui.trail import record_action

#: Largest allow_failures a batch row can store (a 32-bit integer column).
MAX_ALLOW_FAILURES = 2**31 - 1


def _owner() -> str:
    return _tenant() or _settings().default_tenant


def _jobs(body: dict[str, Any], key: str = "jobs") -> list[DispatchSpec]:
    """Raises: BadRequest if `jobs` is not a list of objects (an empty list is a 422 later)."""
    items = body.get(key)
    if not isinstance(items, list):
        raise BadRequest(f"{key} must be a list of jobs")
    return [_job(item, f"{key}[{i}]") for i, item in enumerate(items)]


def _job(item: Any, where: str) -> DispatchSpec:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with job_class, payload and options")
    try:
        return parse_dispatch(item, tenant_id=_owner(), where=f"{where}.")
    except BadRequest as exc:
        raise BadRequest(f"{where}: {exc.description}") from exc


def _optional_job(body: dict[str, Any], key: str) -> DispatchSpec | None:
    value = body.get(key)
    return None if value is None else _job(value, key)


def _name(body: dict[str, Any]) -> str | None:
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 200):
        raise BadRequest("name must be a string of at most 200 characters")
    return name


def _deps() -> dict[str, Any]:
    return {
        "registry": get_registry(),
        "publisher": get_publisher(),
        "settings": _settings(),
        "hub": get_hub(_settings()),
    }


def _allow_failures(body: dict[str, Any]) -> Any:
    """Raises: ValidationError for a number SQL cannot store (the service checks the rest)."""
    allow = body.get("allow_failures", 0)
    if isinstance(allow, int) and not isinstance(allow, bool) and allow > MAX_ALLOW_FAILURES:
        raise ValidationError(f"allow_failures must be at most {MAX_ALLOW_FAILURES}")
    return 0 if allow is None else allow


@bp.post("/batches")
@api_auth("operator")
def create_batch() -> Any:
    body = json_body()
    batch_request = batches_service.BatchRequest(
        tenant_id=_owner(),
        jobs=_jobs(body),
        name=_name(body),
        allow_failures=_allow_failures(body),
        then=_optional_job(body, "then"),
        catch=_optional_job(body, "catch"),
        finally_=_optional_job(body, "finally"),
    )

    def perform(ids: dict[str, Any], resumed: bool) -> Answer:
        job_ids: list[str] = ids["job_ids"]
        answer = {"id": ids["batch_id"], "job_ids": job_ids, "total_jobs": len(job_ids)}
        if resumed and _exists(batches_service.get_batch, ids["batch_id"]):
            return Answer(201, answer)  # created by a request with this key that died before answering
        with_ids = replace(
            batch_request,
            id=ids["batch_id"],
            jobs=[replace(spec, job_id=job_id) for spec, job_id in zip(batch_request.jobs, job_ids, strict=True)],
        )
        try:
            batches_service.create_batch(sql(), with_ids, **_deps())
        except IntegrityError:
            if not (resumed and _exists(batches_service.get_batch, ids["batch_id"])):
                raise
            return Answer(201, answer)  # the request that held the key was alive and made it
        audit = functools.partial(
            record_action, "batch.create", "batch", ids["batch_id"], after={"total_jobs": len(job_ids)}
        )
        return Answer(201, answer, audit)

    ids = {"batch_id": new_id(), "job_ids": [new_id() for _ in batch_request.jobs]}
    return answer_once("POST /api/batches", _owner(), body, ids, perform)


def _exists(get: Callable[[Any, str, str | None], Any], group_id: str) -> bool:
    """Whether a batch or chain with this id exists (after a failed write, rolled back first)."""
    sql().rollback()
    try:
        get(sql(), group_id, _tenant())
    except NotFound:
        return False
    return True


@bp.get("/batches/<batch_id>")
@api_auth("viewer")
def get_batch(batch_id: str) -> Any:
    return jsonify(batches_service.get_batch(sql(), batch_id, _tenant()))


@bp.post("/batches/<batch_id>/jobs")
@api_auth("operator")
def add_batch_jobs(batch_id: str) -> Any:
    specs = _jobs(json_body())
    # Counted before the jobs are added: the answer must not read the batch back after
    # the commit (an outage then would fail a request that succeeded).
    before = batches_service.get_batch(sql(), batch_id, _tenant())["total_jobs"]
    job_ids = batches_service.add_jobs(sql(), batch_id, _tenant(), specs, **_deps())
    record_action("batch.add_jobs", "batch", batch_id, after={"added": len(job_ids)})
    return jsonify(id=batch_id, job_ids=job_ids, total_jobs=before + len(job_ids)), 201


@bp.post("/batches/<batch_id>/cancel")
@api_auth("operator")
def cancel_batch(batch_id: str) -> Any:
    _batch, cancelled = batches_service.cancel_batch(
        sql(), batch_id, _tenant(), canceller=_canceller(), hub=get_hub(_settings())
    )
    record_action("batch.cancel", "batch", batch_id, after={"cancelled_jobs": cancelled})
    return jsonify(id=batch_id, status="cancelled", cancelled_jobs=cancelled)


@bp.post("/chains")
@api_auth("operator")
def create_chain() -> Any:
    body = json_body()
    steps, catch, name = _jobs(body), _optional_job(body, "catch"), _name(body)

    def earlier(chain_id: str) -> Answer:
        """The chain a request with this key created before it died (or is still answering)."""
        view = batches_service.get_chain(sql(), chain_id, _tenant())
        return Answer(201, {"id": chain_id, "job_ids": view["job_ids"]})

    def perform(ids: dict[str, Any], resumed: bool) -> Answer:
        chain_id = ids["chain_id"]
        if resumed and _exists(batches_service.get_chain, chain_id):
            return earlier(chain_id)
        try:
            created = batches_service.create_chain(sql(), _owner(), steps, catch, name, chain_id=chain_id, **_deps())
        except IntegrityError:
            if not (resumed and _exists(batches_service.get_chain, chain_id)):
                raise
            return earlier(chain_id)
        audit = functools.partial(
            record_action, "chain.create", "chain", created.id, after={"total_steps": len(created.job_ids)}
        )
        return Answer(201, {"id": created.id, "job_ids": created.job_ids}, audit)

    return answer_once("POST /api/chains", _owner(), body, {"chain_id": new_id()}, perform)


@bp.get("/chains/<chain_id>")
@api_auth("viewer")
def get_chain(chain_id: str) -> Any:
    return jsonify(batches_service.get_chain(sql(), chain_id, _tenant()))


@bp.post("/chains/<chain_id>/cancel")
@api_auth("operator")
def cancel_chain(chain_id: str) -> Any:
    view, cancelled = batches_service.cancel_chain(sql(), chain_id, _tenant(), canceller=_canceller())
    record_action("chain.cancel", "chain", chain_id, after={"cancelled_jobs": cancelled})
    return jsonify({**view, "cancelled_jobs": cancelled})
