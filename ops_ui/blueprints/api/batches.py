"""Batches and chains section of API.md (J5, J6), plus chain cancel (an extension)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from flask import jsonify
from sqlalchemy.exc import IntegrityError

from app.backends.current import backends
from app.composition import batches as batches_service
from app.composition.runtime import get_hub
from app.errors import NotFound
from app.kernel.dispatching import DispatchSpec
from app.models.base import new_id
from ops_ui.auth import api_auth
from ops_ui.blueprints.api.blueprint import bp
from ops_ui.blueprints.api.idempotent import Answer, answer_once
from ops_ui.blueprints.api.jobs import _canceller, _settings, _tenant
from ops_ui.blueprints.api.models.groups import (
    AddJobsBody,
    Batch,
    BatchBody,
    BatchCancelled,
    BatchCreated,
    Chain,
    ChainBody,
    ChainCancelled,
    ChainCreated,
)
from ops_ui.blueprints.api.models.jobs import DispatchBody
from ops_ui.blueprints.api.operation import operation
from ops_ui.blueprints.api.schemas import dispatch_spec, json_body
from ops_ui.blueprints.api.validation import read_body, validated
from ops_ui.extensions import sql
from ops_ui.trail import record_action


def _owner() -> str:
    return _tenant() or _settings().default_tenant


def _specs(jobs: list[DispatchBody]) -> list[DispatchSpec]:
    return [dispatch_spec(job, _owner()) for job in jobs]


def _spec(job: DispatchBody | None) -> DispatchSpec | None:
    return None if job is None else dispatch_spec(job, _owner())


def _deps() -> dict[str, Any]:
    return {
        "registry": backends().registry,
        "publisher": backends().publisher,
        "settings": _settings(),
        "hub": get_hub(_settings()),
    }


@bp.post("/batches")
@api_auth("operator")
@operation(
    "Dispatch a batch: all jobs, or none", body=BatchBody, answers={201: (BatchCreated, "queued")}, idempotent=True
)
def create_batch() -> Any:
    body = json_body()
    batch = validated(BatchBody, body)
    batch_request = batches_service.BatchRequest(
        tenant_id=_owner(),
        jobs=_specs(batch.jobs),
        name=batch.name,
        allow_failures=batch.allow_failures or 0,
        then=_spec(batch.then),
        catch=_spec(batch.catch),
        finally_=_spec(batch.finally_),
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
@operation("A batch: status, counts and progress", answers={200: (Batch, "the batch")})
def get_batch(batch_id: str) -> Any:
    return jsonify(batches_service.get_batch(sql(), batch_id, _tenant()))


@bp.post("/batches/<batch_id>/jobs")
@api_auth("operator")
@operation(
    "Add jobs to a running batch", body=AddJobsBody, answers={201: (BatchCreated, "the jobs added")}, errors=(409,)
)
def add_batch_jobs(batch_id: str) -> Any:
    specs = _specs(read_body(AddJobsBody).jobs)
    # Counted before the jobs are added: the answer must not read the batch back after
    # the commit (an outage then would fail a request that succeeded).
    before = batches_service.get_batch(sql(), batch_id, _tenant())["total_jobs"]
    job_ids = batches_service.add_jobs(sql(), batch_id, _tenant(), specs, **_deps())
    record_action("batch.add_jobs", "batch", batch_id, after={"added": len(job_ids)})
    return jsonify(id=batch_id, job_ids=job_ids, total_jobs=before + len(job_ids)), 201


@bp.post("/batches/<batch_id>/cancel")
@api_auth("operator")
@operation("Cancel a batch and its pending jobs", answers={200: (BatchCancelled, "cancelled")}, errors=(409,))
def cancel_batch(batch_id: str) -> Any:
    _batch, cancelled = batches_service.cancel_batch(
        sql(), batch_id, _tenant(), canceller=_canceller(), hub=get_hub(_settings())
    )
    record_action("batch.cancel", "batch", batch_id, after={"cancelled_jobs": cancelled})
    return jsonify(id=batch_id, status="cancelled", cancelled_jobs=cancelled)


@bp.post("/chains")
@api_auth("operator")
@operation("Dispatch a chain", body=ChainBody, answers={201: (ChainCreated, "queued")}, idempotent=True)
def create_chain() -> Any:
    body = json_body()
    chain = validated(ChainBody, body)
    steps, catch, name = _specs(chain.jobs), _spec(chain.catch), chain.name

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
@operation("A chain: status, current step and progress", answers={200: (Chain, "the chain")})
def get_chain(chain_id: str) -> Any:
    return jsonify(batches_service.get_chain(sql(), chain_id, _tenant()))


@bp.post("/chains/<chain_id>/cancel")
@api_auth("operator")
@operation("Cancel a chain's running and waiting steps", answers={200: (ChainCancelled, "cancelled")}, errors=(409,))
def cancel_chain(chain_id: str) -> Any:
    view, cancelled = batches_service.cancel_chain(sql(), chain_id, _tenant(), canceller=_canceller())
    record_action("chain.cancel", "chain", chain_id, after={"cancelled_jobs": cancelled})
    return jsonify({**view, "cancelled_jobs": cancelled})
