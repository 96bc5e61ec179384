"""Batches and chains section of API.md (J5, J6), plus chain cancel (an extension)."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from werkzeug.exceptions import BadRequest

from app.composition.runtime import get_hub
from app.jobs.dispatch import get_publisher, get_registry
from app.services import batches as batches_service
from app.services.dispatching import DispatchSpec
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.jobs import _canceller, _settings, _tenant
from ops_ui.blueprints.api.schemas import json_body, parse_dispatch
from ops_ui.extensions import sql
from ops_ui.trail import record_action


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
        return parse_dispatch(item, tenant_id=_owner())
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


@bp.post("/batches")
@api_auth("operator")
def create_batch() -> Any:
    body = json_body()
    allow = body.get("allow_failures", 0)
    batch_request = batches_service.BatchRequest(
        tenant_id=_owner(),
        jobs=_jobs(body),
        name=_name(body),
        allow_failures=0 if allow is None else allow,
        then=_optional_job(body, "then"),
        catch=_optional_job(body, "catch"),
        finally_=_optional_job(body, "finally"),
    )
    created = batches_service.create_batch(sql(), batch_request, **_deps())
    record_action("batch.create", "batch", created.id, after={"total_jobs": len(created.job_ids)})
    return jsonify(id=created.id, job_ids=created.job_ids, total_jobs=len(created.job_ids)), 201


@bp.get("/batches/<batch_id>")
@api_auth("viewer")
def get_batch(batch_id: str) -> Any:
    return jsonify(batches_service.get_batch(sql(), batch_id, _tenant()))


@bp.post("/batches/<batch_id>/jobs")
@api_auth("operator")
def add_batch_jobs(batch_id: str) -> Any:
    specs = _jobs(json_body())
    job_ids = batches_service.add_jobs(sql(), batch_id, _tenant(), specs, **_deps())
    view = batches_service.get_batch(sql(), batch_id, _tenant())
    record_action("batch.add_jobs", "batch", batch_id, after={"added": len(job_ids)})
    return jsonify(id=batch_id, job_ids=job_ids, total_jobs=view["total_jobs"]), 201


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
    created = batches_service.create_chain(
        sql(), _owner(), _jobs(body), _optional_job(body, "catch"), _name(body), **_deps()
    )
    record_action("chain.create", "chain", created.id, after={"total_steps": len(created.job_ids)})
    return jsonify(id=created.id, job_ids=created.job_ids), 201


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
